package connectors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/jobrunner/flow"
)

// rec is a record detached from the source's buffers.
type rec struct {
	Time int64
	Row  []flow.Value
}

func detach(recs []flow.Record) []rec {
	out := make([]rec, len(recs))
	for i, r := range recs {
		out[i] = rec{Time: r.Time, Row: slices.Clone(r.Row)}
	}
	return out
}

// readN reads until n records arrived (n < 0: until io.EOF), failing after a
// deadline. It returns the records and whether io.EOF was seen.
func readN(t *testing.T, src flow.Source, n, batch int) ([]rec, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []rec
	buf := make([]flow.Record, 0, batch)
	for n < 0 || len(out) < n {
		want := batch
		if n >= 0 {
			want = min(batch, n-len(out))
		}
		recs, err := src.Read(ctx, buf[:0], want)
		out = append(out, detach(recs)...)
		if errors.Is(err, io.EOF) {
			return out, true
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if ctx.Err() != nil {
			t.Fatalf("%d records read, waited for %d", len(out), n)
		}
	}
	return out, false
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // a poll interval, not a wait for an event
	}
}

// fmtSscan parses "k<int>".
func fmtSscan(key string, i *int) (int, error) {
	return fmt.Sscanf(key, "k%d", i)
}

func fmtInt(i int) string { return fmt.Sprint(i) }
