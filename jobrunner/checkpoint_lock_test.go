package jobrunner

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/jobrunner/connectors"
)

func TestDecideLease(t *testing.T) {
	timing := leaseTiming{ttl: 60 * time.Second, renew: 10 * time.Second}
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	const (
		app1att1 = "container_e17_1410901177871_0001_01_000001"
		app1att2 = "container_e17_1410901177871_0001_02_000001"
		app1att3 = "container_1410901177871_0001_03_000001"
		app2att1 = "container_e17_1410901177871_0002_01_000001"
	)
	lock := func(container string, mtime time.Time, raw string) lockState {
		return lockState{raw: []byte(raw), holder: lockOwner{Token: "h", Container: container}, mtime: mtime}
	}
	me := lockOwner{Token: "me", Container: app1att2}
	tests := []struct {
		name     string
		prev     *lockState
		cur      lockState
		now      time.Time
		me       lockOwner
		want     leaseAction
		wantWait time.Duration
	}{
		{name: "fresh: wait for it to expire", cur: lock("", t0, "a"), now: t0.Add(15 * time.Second), me: me,
			want: leaseWait, wantWait: 45*time.Second + 5*time.Second},
		{name: "expired", cur: lock("", t0, "a"), now: t0.Add(60 * time.Second), me: me, want: leaseTakeOver},
		{name: "not renewed while we waited", prev: ptrTo(lock("", t0, "a")), cur: lock("", t0, "a"), now: t0.Add(61 * time.Second), me: me,
			want: leaseTakeOver},
		{name: "renewed while we waited", prev: ptrTo(lock("", t0, "a")), cur: lock("", t0.Add(10*time.Second), "b"), now: t0.Add(61 * time.Second), me: me,
			want: leaseBusy},
		{name: "same content, newer mtime", prev: ptrTo(lock("", t0, "a")), cur: lock("", t0.Add(time.Second), "a"), now: t0.Add(61 * time.Second), me: me,
			want: leaseBusy},
		{name: "other holder now", prev: ptrTo(lock("", t0, "a")), cur: lock("", t0, "c"), now: t0.Add(61 * time.Second), me: me,
			want: leaseBusy},
		{name: "earlier attempt of my application", cur: lock(app1att1, t0, "a"), now: t0, me: me, want: leaseTakeOver},
		{name: "same attempt", cur: lock(app1att2, t0, "a"), now: t0, me: me, want: leaseWait, wantWait: 65 * time.Second},
		{name: "later attempt", cur: lock(app1att3, t0, "a"), now: t0, me: me, want: leaseWait, wantWait: 65 * time.Second},
		{name: "other application", cur: lock(app2att1, t0, "a"), now: t0, me: me, want: leaseWait, wantWait: 65 * time.Second},
		{name: "not under YARN", cur: lock(app1att1, t0, "a"), now: t0, me: lockOwner{Token: "me"}, want: leaseWait, wantWait: 65 * time.Second},
		{name: "malformed container", cur: lock("container_x", t0, "a"), now: t0, me: me, want: leaseWait, wantWait: 65 * time.Second},
		{name: "unreadable lock, expired", cur: lockState{raw: []byte("\x00"), mtime: t0}, now: t0.Add(time.Hour), me: me, want: leaseTakeOver},
		{name: "modified in the future", cur: lock("", t0.Add(time.Hour), "a"), now: t0, me: me, want: leaseWait, wantWait: 65 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, wait := decideLease(tc.prev, tc.cur, tc.now, tc.me, timing)
			if got != tc.want || wait != tc.wantWait {
				t.Errorf("decideLease = %v, %s; want %v, %s", got, wait, tc.want, tc.wantWait)
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }

// leaseEnv is a lease lock on a local directory.
type leaseEnv struct {
	fsys connectors.FS
	dir  string
	lock string
}

func newLeaseEnv(t *testing.T) *leaseEnv {
	dir := t.TempDir()
	fsys, _, err := connectors.OpenFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &leaseEnv{fsys: fsys, dir: dir, lock: filepath.Join(dir, lockFile)}
}

// plant writes a lock file for holder, last renewed at mtime.
func (e *leaseEnv) plant(t *testing.T, holder lockOwner, mtime time.Time) []byte {
	t.Helper()
	raw, _ := json.Marshal(holder)
	writeAll(t, e.lock, raw)
	if err := os.Chtimes(e.lock, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return raw
}

func (e *leaseEnv) holder(t *testing.T) lockOwner {
	t.Helper()
	var o lockOwner
	if err := json.Unmarshal(readAll(t, e.lock), &o); err != nil {
		t.Fatal(err)
	}
	return o
}

func (e *leaseEnv) acquire(t *testing.T, me lockOwner, timing leaseTiming, sleep func(context.Context, time.Duration) error) (*leaseLock, error) {
	l, err := acquireLease(context.Background(), e.fsys, e.lock, me, timing, sleep, testLog(t), func(error) {})
	if err == nil {
		t.Cleanup(l.release)
	}
	return l, err
}

func noSleep(t *testing.T) func(context.Context, time.Duration) error {
	return func(context.Context, time.Duration) error {
		t.Error("waited for a lease that should have been taken at once")
		return errors.New("no waiting")
	}
}

func TestLeaseTakesOverAbandonedLock(t *testing.T) {
	e := newLeaseEnv(t)
	dead := newLockOwner(testJobID, 1)
	e.plant(t, dead, time.Now().Add(-2*time.Hour))
	me := newLockOwner(testJobID, 2)
	if _, err := e.acquire(t, me, defaultLeaseTiming, noSleep(t)); err != nil {
		t.Fatal(err)
	}
	if h := e.holder(t); h.Token != me.Token {
		t.Errorf("lock held by %s, want me", h)
	}
	leftovers, _ := filepath.Glob(filepath.Join(e.dir, lockFile+".*"))
	if len(leftovers) != 0 {
		t.Errorf("left behind %v", leftovers)
	}
}

func TestLeaseTakesOverEarlierYARNAttemptAtOnce(t *testing.T) {
	e := newLeaseEnv(t)
	prev := newLockOwner(testJobID, 1)
	prev.Container = "container_e17_1410901177871_0001_01_000001"
	e.plant(t, prev, time.Now())
	me := newLockOwner(testJobID, 2)
	me.Container = "container_e17_1410901177871_0001_02_000001"
	if _, err := e.acquire(t, me, defaultLeaseTiming, noSleep(t)); err != nil {
		t.Fatal(err)
	}
	if h := e.holder(t); h.Token != me.Token {
		t.Errorf("lock held by %s, want me", h)
	}
}

func TestLeaseWaitsForAFreshLockToExpire(t *testing.T) {
	e := newLeaseEnv(t)
	e.plant(t, newLockOwner(testJobID, 1), time.Now())
	me := newLockOwner(testJobID, 2)
	// The holder never renews: after one wait the lock has expired.
	timing := leaseTiming{ttl: 150 * time.Millisecond, renew: 50 * time.Millisecond}
	waits := 0
	sleep := func(ctx context.Context, d time.Duration) error {
		waits++
		if d <= 0 || d > timing.ttl+timing.renew {
			t.Errorf("wait %s", d)
		}
		return sleepCtx(ctx, d)
	}
	if _, err := e.acquire(t, me, timing, sleep); err != nil {
		t.Fatal(err)
	}
	if waits == 0 {
		t.Error("took a fresh lock over without waiting")
	}
	if h := e.holder(t); h.Token != me.Token {
		t.Errorf("lock held by %s, want me", h)
	}
}

func TestLeaseWaitCancelled(t *testing.T) {
	e := newLeaseEnv(t)
	e.plant(t, newLockOwner(testJobID, 1), time.Now())
	_, err := e.acquire(t, newLockOwner(testJobID, 2), defaultLeaseTiming, func(context.Context, time.Duration) error { return context.Canceled })
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), e.lock) {
		t.Errorf("err = %v, want context.Canceled naming %s", err, e.lock)
	}
}

func TestLeaseTakeOverLosesRace(t *testing.T) {
	e := newLeaseEnv(t)
	raw := e.plant(t, newLockOwner(testJobID, 1), time.Now().Add(-time.Hour))
	fi, _ := os.Stat(e.lock)
	seen := lockState{raw: raw, mtime: fi.ModTime()}
	// Between looking and taking over, another contender took the lock.
	winner := newLockOwner(testJobID, 3)
	e.plant(t, winner, time.Now())
	l := &leaseLock{fsys: e.fsys, path: e.lock, owner: newLockOwner(testJobID, 2), log: testLog(t)}
	if err := l.takeOver(&seen); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("takeOver = %v, want ErrAlreadyRunning", err)
	}
	if _, err := os.Stat(e.lock); !errors.Is(err, os.ErrNotExist) {
		// The displaced winner notices at its next renewal.
		t.Errorf("lock file: %v", err)
	}
	winnerLease := &leaseLock{fsys: e.fsys, path: e.lock, owner: winner, log: testLog(t)}
	if err := winnerLease.renew(); !errors.Is(err, ErrCheckpointLockLost) {
		t.Errorf("renew of the displaced holder = %v, want ErrCheckpointLockLost", err)
	}
}

func TestLeaseReleaseAndRenew(t *testing.T) {
	e := newLeaseEnv(t)
	me := newLockOwner(testJobID, 1)
	l, err := e.acquire(t, me, defaultLeaseTiming, noSleep(t))
	if err != nil {
		t.Fatal(err)
	}
	before := readAll(t, e.lock)
	if err := l.renew(); err != nil {
		t.Fatal(err)
	}
	if h := e.holder(t); h.Token != me.Token || h.Renewals != 1 || string(readAll(t, e.lock)) == string(before) {
		t.Errorf("after renewal the lock holds %s", readAll(t, e.lock))
	}
	l.release()
	l.release() // idempotent
	if _, err := os.Stat(e.lock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file after release: %v", err)
	}
	if _, err := acquireLease(context.Background(), e.fsys, e.lock, me, leaseTiming{ttl: time.Second, renew: time.Second}, sleepCtx, testLog(t), nil); err == nil {
		t.Error("accepted a lease ttl not above twice the renewal interval")
	}
}
