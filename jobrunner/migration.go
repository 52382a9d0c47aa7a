package jobrunner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidewatch/tidewatch/jobrunner/flow"
	"github.com/tidewatch/tidewatch/jobrunner/procstat"
)

// Live migration of keyed state between the heap and Pebble backends (the
// adaptive state manager). A request names a target backend and key groups;
// the engine hands each keyed subtask its share, and the subtask moves one
// key group at a time between records. The job master keeps the request
// and reads progress from the subtasks' counters.

// Migration triggers.
const (
	triggerREST           = "rest"
	triggerMemoryPressure = "memory-pressure"
)

// migrationRequest is the body of POST /jobs/:id/state-backend/migrations.
type migrationRequest struct {
	Target    string          `json:"target"`
	KeyGroups json.RawMessage `json:"keyGroups"`
}

// migration is the job master's record of the current or last request.
type migration struct {
	target    flow.Backend
	keyGroups []int // nil: all
	trigger   string
	start     time.Time
	end       time.Time // zero while running
	// Counters of the subtasks when the request started.
	movedBefore, nsBefore int64
}

// migrations holds the job's current or last migration.
type migrations struct {
	mu   sync.Mutex
	last *migration
}

// parseKeyGroups reads "all" (nil), a string of ranges "0-63,100", or a JSON
// list of key groups, each within 0..maxPar-1.
func parseKeyGroups(raw json.RawMessage, maxPar int) ([]int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []int
	if err := json.Unmarshal(raw, &list); err == nil {
		for _, kg := range list {
			if kg < 0 || kg >= maxPar {
				return nil, fmt.Errorf("key group %d outside 0..%d", kg, maxPar-1)
			}
		}
		slices.Sort(list)
		return slices.Compact(list), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, errors.New(`must be "all", a string of ranges like "0-63,100", or a list of key groups`)
	}
	return ParseKeyGroupRanges(s, maxPar)
}

// ParseKeyGroupRanges parses "all" (nil) or comma-separated key groups and
// inclusive ranges ("0-63,100").
func ParseKeyGroupRanges(s string, maxPar int) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "all" || s == "" {
		return nil, nil
	}
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(strings.TrimSpace(hi))
		}
		switch {
		case err1 != nil || err2 != nil:
			return nil, fmt.Errorf("%q is not a key group or a range like 0-63", part)
		case a > b:
			return nil, fmt.Errorf("range %q is empty", part)
		case a < 0 || b >= maxPar:
			return nil, fmt.Errorf("%q is outside 0..%d", part, maxPar-1)
		}
		for kg := a; kg <= b; kg++ {
			out = append(out, kg)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// startMigration asks the running engine to move key groups.
func (j *job) startMigration(ctx context.Context, target flow.Backend, kgs []int, trigger string) error {
	eng := j.eng.Load()
	if eng == nil {
		return errors.New("the job is not running")
	}
	j.migr.mu.Lock()
	defer j.migr.mu.Unlock()
	if m := j.migr.last; m != nil && m.end.IsZero() && j.migrationPending(eng) > 0 {
		return errMigrationRunning
	}
	moved, ns := migrationCounters(eng)
	if err := eng.Migrate(ctx, target, kgs); err != nil {
		return err
	}
	j.migr.last = &migration{target: target, keyGroups: kgs, trigger: trigger, start: time.Now(), movedBefore: moved, nsBefore: ns}
	j.log.WithFields(map[string]any{"target": target.String(), "keyGroups": describeKeyGroups(kgs), "trigger": trigger}).
		Info("state migration started")
	return nil
}

var errMigrationRunning = errors.New("a migration is already running")

func (j *job) migrationPending(eng *flow.Engine) int64 {
	var n int64
	for _, s := range eng.KeyedStats {
		n += s.MigrationPending.Load()
	}
	return n
}

func migrationCounters(eng *flow.Engine) (moved, ns int64) {
	for _, s := range eng.KeyedStats {
		moved += s.MigratedEntries.Load()
		ns += s.MigrationNs.Load()
	}
	return moved, ns
}

func describeKeyGroups(kgs []int) string {
	if kgs == nil {
		return "all"
	}
	return strconv.Itoa(len(kgs)) + " key groups"
}

// MigrationStatus is GET /jobs/:id/state-backend/migrations: the current or
// last move of keyed state between backends. The daemon's job-master client
// reads the same type.
type MigrationStatus struct {
	Status    string `json:"status"` // NONE, RUNNING or COMPLETED
	Target    string `json:"target,omitempty"`
	Trigger   string `json:"trigger,omitempty"`
	KeyGroups *struct {
		Requested int   `json:"requested"`
		Remaining int64 `json:"remaining"`
	} `json:"keyGroups,omitempty"`
	EntriesMoved int64 `json:"entriesMoved"`
	// MovingMs is the time spent moving (the sum of the steps); MaxStallMs
	// the longest single step, during which that subtask's records waited.
	MovingMs   float64        `json:"movingMs"`
	MaxStallMs float64        `json:"maxStallMs"`
	StartTime  int64          `json:"startTime,omitempty"`
	EndTime    int64          `json:"endTime,omitempty"`
	Backends   map[string]int `json:"backends"` // key groups per backend now
	// KeyGroups per backend now, as ranges ("0-63,100").
	Ranges map[string]string `json:"keyGroupRanges"`
}

// keyGroupRanges writes the key groups on each backend as ranges.
func keyGroupRanges(eng *flow.Engine, maxPar int) map[string]string {
	lists := map[flow.Backend][]string{}
	for kg := 0; kg < maxPar; {
		b := eng.KeyGroupBackend(kg)
		end := kg
		for end+1 < maxPar && eng.KeyGroupBackend(end+1) == b {
			end++
		}
		r := strconv.Itoa(kg)
		if end > kg {
			r += "-" + strconv.Itoa(end)
		}
		lists[b] = append(lists[b], r)
		kg = end + 1
	}
	return map[string]string{"heap": strings.Join(lists[flow.BackendHeap], ","), "pebble": strings.Join(lists[flow.BackendPebble], ",")}
}

func (j *job) migrationStatus() MigrationStatus {
	v := MigrationStatus{Status: "NONE", Backends: map[string]int{"heap": 0, "pebble": 0}}
	eng := j.eng.Load()
	if eng == nil {
		return v
	}
	pebbleKGs := 0
	var stall int64
	for _, s := range eng.KeyedStats {
		pebbleKGs += int(s.PebbleKeyGroups.Load())
		stall = max(stall, s.MigrationMaxStallNs.Load())
	}
	if len(eng.KeyedStats) > 0 {
		v.Backends["pebble"] = pebbleKGs
		v.Backends["heap"] = j.spec.MaxParallelism - pebbleKGs
		v.Ranges = keyGroupRanges(eng, j.spec.MaxParallelism)
	}
	j.migr.mu.Lock()
	defer j.migr.mu.Unlock()
	m := j.migr.last
	if m == nil {
		return v
	}
	pending := j.migrationPending(eng)
	if pending == 0 && m.end.IsZero() {
		m.end = time.Now()
		moved, ns := migrationCounters(eng)
		j.log.WithFields(map[string]any{"target": m.target.String(), "entries": moved - m.movedBefore,
			"moving": time.Duration(ns - m.nsBefore).String(), "maxStall": time.Duration(stall).String()}).Info("state migration completed")
	}
	moved, ns := migrationCounters(eng)
	requested := len(m.keyGroups)
	if m.keyGroups == nil {
		requested = j.spec.MaxParallelism
	}
	v.Status, v.Target, v.Trigger = "RUNNING", m.target.String(), m.trigger
	if !m.end.IsZero() {
		v.Status, v.EndTime = "COMPLETED", m.end.UnixMilli()
	}
	v.KeyGroups = &struct {
		Requested int   `json:"requested"`
		Remaining int64 `json:"remaining"`
	}{requested, pending}
	v.EntriesMoved = moved - m.movedBefore
	v.MovingMs = float64(ns-m.nsBefore) / 1e6
	v.MaxStallMs = float64(stall) / 1e6
	v.StartTime = m.start.UnixMilli()
	return v
}

func (j *job) postMigration(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		badRequest(w, "reading the body: %v", err)
		return
	}
	var req migrationRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		badRequest(w, "body: %v", err)
		return
	}
	target, err := flow.ParseBackend(req.Target)
	if err != nil {
		badRequest(w, `target: must be "heap" or "pebble", got %q`, req.Target)
		return
	}
	kgs, err := parseKeyGroups(req.KeyGroups, j.spec.MaxParallelism)
	if err != nil {
		badRequest(w, "keyGroups: %v", err)
		return
	}
	switch err := j.startMigration(r.Context(), target, kgs, triggerREST); {
	case errors.Is(err, errMigrationRunning):
		writeError(w, http.StatusConflict, "A migration is already running; wait for it to complete.")
	case errors.Is(err, flow.ErrBackend):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		writeError(w, http.StatusConflict, "Cannot migrate: "+err.Error())
	default:
		writeJSON(w, http.StatusAccepted, j.migrationStatus())
	}
}

func (j *job) getMigration(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, j.migrationStatus())
}

// memoryPolicy is the job master's memory-pressure policy (spec
// autoMigrate): it watches the heap load of each process sample and moves
// every key group to Pebble once the load has stayed above the threshold for
// the sustain time.
type memoryPolicy struct {
	j     *job
	spec  AutoMigrateSpec
	since time.Time // when the load went above the threshold; zero if below
	fired bool
}

func (p *memoryPolicy) observe(ctx context.Context, s procstat.Sample) {
	load := s.HeapLoad()
	if !(load > p.spec.HeapLoad) { // NaN (no limit) counts as below
		p.since = time.Time{}
		return
	}
	if p.since.IsZero() {
		p.since = s.Time
	}
	if p.fired || s.Time.Sub(p.since) < p.spec.Sustain {
		return
	}
	st := p.j.migrationStatus()
	if st.Backends["heap"] == 0 || st.Status == "RUNNING" {
		return
	}
	p.j.log.WithFields(map[string]any{"heapLoad": load, "threshold": p.spec.HeapLoad, "for": s.Time.Sub(p.since).String()}).
		Warn("memory pressure: moving keyed state to Pebble")
	if err := p.j.startMigration(ctx, flow.BackendPebble, nil, triggerMemoryPressure); err != nil {
		p.j.log.WithError(err).Warn("memory pressure: cannot start the migration")
		return
	}
	p.fired = true // once per job master: a person decides about moving back
}
