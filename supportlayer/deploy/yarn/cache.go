package yarn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tidewatch/tidewatch/yarn/rm"
)

// liveStates are the YarnApplicationStates listed each cycle. Ended
// applications are left out of the listing (the RM keeps up to a thousand of
// them); the watcher looks at an ended deployment once, with a single report.
var liveStates = []string{rm.StateNew, rm.StateNewSaving, rm.StateSubmitted, rm.StateAccepted, rm.StateRunning}

// appSource is what the cache needs of the RM client.
type appSource interface {
	Applications(ctx context.Context, f rm.ListFilter) ([]rm.Application, error)
	Application(ctx context.Context, id string) (*rm.Application, error)
}

// appCache is the deployer's view of the RM's applications: one listing of
// the live Tidewatch applications of the user, taken at most once per watch
// cycle (BeginCycle marks it stale; maxAge bounds it when no cycle begins),
// and the single reports of applications missing from it, kept until the
// next listing. Concurrent readers share one listing request.
type appCache struct {
	src    appSource
	filter rm.ListFilter
	maxAge time.Duration
	now    func() time.Time

	mu       sync.Mutex
	listedAt time.Time // zero: never listed
	stale    bool
	listErr  error // the last listing's error, served until the next one
	inflight chan struct{}
	byID     map[string]*rm.Application
	byTag    map[string]*rm.Application // deployment tag → application
	reports  map[string]*rm.Application // single reports since the listing
}

func newAppCache(src appSource, user string, maxAge time.Duration, now func() time.Time) *appCache {
	return &appCache{
		src: src, maxAge: maxAge, now: now,
		filter: rm.ListFilter{
			States:           liveStates,
			ApplicationTypes: []string{rm.ApplicationTypeTidewatch},
			User:             user,
			DeSelects:        []string{"resourceRequests"},
		},
		byID: map[string]*rm.Application{}, byTag: map[string]*rm.Application{}, reports: map[string]*rm.Application{},
	}
}

// beginCycle makes the next read list the applications again.
func (c *appCache) beginCycle() {
	c.mu.Lock()
	c.stale = true
	c.mu.Unlock()
}

// fresh lists the applications unless the listing in hand is current. A
// failed listing is remembered like a good one, so that a cycle against an
// unreachable RM costs one failed request, not one per job.
func (c *appCache) fresh(ctx context.Context) error {
	c.mu.Lock()
	for {
		if !c.listedAt.IsZero() && !c.stale && c.now().Sub(c.listedAt) < c.maxAge {
			err := c.listErr
			c.mu.Unlock()
			return err
		}
		if c.inflight == nil {
			break
		}
		ch := c.inflight
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
	}
	ch := make(chan struct{})
	c.inflight = ch
	c.mu.Unlock()

	apps, err := c.src.Applications(ctx, c.filter)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight = nil
	close(ch)
	if err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) && ctx.Err() != nil {
		return err // this caller gave up; the next one lists again
	}
	c.listedAt, c.stale, c.listErr = c.now(), false, err
	if err != nil {
		return err
	}
	c.byID = make(map[string]*rm.Application, len(apps))
	c.byTag = make(map[string]*rm.Application, len(apps))
	c.reports = map[string]*rm.Application{}
	for i := range apps {
		a := &apps[i]
		c.byID[a.ID] = a
		for _, t := range a.TagList() {
			c.byTag[t] = a
		}
	}
	return nil
}

// errUnknownApp: the RM answered a report of the application with 404.
var errUnknownApp = errors.New("yarn: application unknown to the resourcemanager")

// app returns an application's report: from the listing, else from a single
// report (kept until the next listing). errors.Is(err, errUnknownApp) when
// the RM does not know the id.
func (c *appCache) app(ctx context.Context, id string) (*rm.Application, error) {
	if err := c.fresh(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	a := c.byID[id]
	if a == nil {
		a = c.reports[id]
	}
	c.mu.Unlock()
	if a != nil {
		return a, nil
	}
	a, err := c.src.Application(ctx, id)
	if errors.Is(err, rm.ErrNotFound) {
		// Only a single report's 404 says the RM does not know the
		// application; a listing's 404 is a wrong address and fails above.
		return nil, fmt.Errorf("%w: %w", errUnknownApp, err)
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.reports[id] = a
	c.mu.Unlock()
	return a, nil
}

// byDeployTag returns the live application carrying tag from the listing,
// or nil.
func (c *appCache) byDeployTag(ctx context.Context, tag string) (*rm.Application, error) {
	if err := c.fresh(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byTag[tag], nil
}

// remember keeps a report of an application (one found by tag) until the
// next listing.
func (c *appCache) remember(a *rm.Application) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reports[a.ID] = a
}

// forget drops what the cache knows of an application, so that the next read
// asks the RM (after a kill).
func (c *appCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.byID[id]; a != nil {
		for _, t := range a.TagList() {
			if c.byTag[t] == a {
				delete(c.byTag, t)
			}
		}
	}
	delete(c.byID, id)
	delete(c.reports, id)
}
