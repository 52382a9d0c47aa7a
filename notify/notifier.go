package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"gorm.io/gorm"

	"github.com/tidewatch/tidewatch/notify/alert"
)

// Alert, Labels, Level and Message are the types of package alert, here so
// that callers of the notifier need one import.
type (
	Alert   = alert.Alert
	Labels  = alert.Labels
	Level   = alert.Level
	Message = alert.Message
)

// Errors of the notifier.
var (
	ErrStopped = errors.New("notify: notifier is stopped")
	ErrInvalid = alert.ErrInvalid
)

// Options are what a Notifier needs besides its configuration.
type Options struct {
	// Log receives the notifier's log lines (nil: discarded).
	Log *logrus.Entry
	// Registerer takes the notifier's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// HTTPClient is used by the HTTP channels (nil: http.DefaultClient).
	HTTPClient *http.Client
	// Channels replace configured channels of the same name
	// (receiver/name); for tests.
	Channels map[string]Channel
}

// Notifier turns alerts into notifications and delivers them: the daemon-side
// component of package notify. Its state lives in the daemon's database, so a
// daemon that restarts loses no alert and no undelivered notification.
//
// Lifecycle: New, Start, then Raise and Resolve from any goroutine, Stop.
type Notifier struct {
	db  *gorm.DB
	cfg Config
	log *logrus.Entry
	now func() time.Time
	m   *metrics

	mu      sync.Mutex
	p       *pipeline
	stopped bool

	out      *outbox
	wake     chan struct{}
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// New validates the configuration and builds the notifier and its channels.
// The database must have the notifier's tables (Migrate).
func New(db *gorm.DB, cfg Config, opts Options) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	root, err := compileRoute(cfg.Route, nil, "0")
	if err != nil {
		return nil, fmt.Errorf("notify.route: %w", err)
	}
	rules, err := compileInhibit(cfg.Inhibit)
	if err != nil {
		return nil, err
	}
	channels, receivers, err := buildChannels(cfg, opts.HTTPClient, opts.Channels)
	if err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = logrus.NewEntry(l)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	n := &Notifier{db: db, cfg: cfg, log: log, now: func() time.Time { return now().UTC() },
		m: newMetrics(opts.Registerer), wake: make(chan struct{}, 1)}
	n.p = newPipeline(root, rules, receivers, *cfg.ResolveTimeout, strings.TrimRight(cfg.ExternalURL, "/"))
	n.out = newOutbox(db, cfg.Outbox, channels, n.now, log.WithField("part", "outbox"), n.m)
	return n, nil
}

// Start reloads what the database holds (firing alerts, the notification
// log, silences, undelivered notifications) and starts grouping and
// delivering.
func (n *Notifier) Start(ctx context.Context) error {
	n.mu.Lock()
	stopped, started := n.stopped, n.cancel != nil
	n.mu.Unlock()
	if stopped {
		return ErrStopped
	}
	if started {
		return errors.New("notify: notifier already started")
	}
	if k, err := n.out.recoverInterrupted(ctx); err != nil {
		return fmt.Errorf("notify: recover the outbox: %w", err)
	} else if k > 0 {
		n.log.WithField("attempts", k).Warn("deliveries were in flight when the daemon stopped; sending them again")
	}
	if err := n.load(ctx); err != nil {
		return fmt.Errorf("notify: load state: %w", err)
	}
	run, cancel := context.WithCancel(context.Background())
	n.mu.Lock()
	n.cancel = cancel
	n.mu.Unlock()
	n.wg.Add(2)
	go func() { defer n.wg.Done(); n.runFlush(run) }()
	go func() { defer n.wg.Done(); n.out.run(run) }()
	return nil
}

// Stop stops grouping and delivering; sends under way are cut short and
// recorded as interrupted, to be sent again on the next Start. It waits for
// every goroutine of the notifier, or until ctx ends. Stop is idempotent.
func (n *Notifier) Stop(ctx context.Context) error {
	var err error
	n.stopOnce.Do(func() {
		n.mu.Lock()
		n.stopped = true
		cancel := n.cancel
		n.mu.Unlock()
		if cancel == nil {
			return
		}
		cancel()
		done := make(chan struct{})
		go func() { n.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = fmt.Errorf("notify: stop: %w", ctx.Err())
		}
	})
	return err
}

// normalize checks an incoming alert and adds the family label.
func normalize(a Alert) (Alert, error) {
	a.Labels = a.Labels.Clone()
	if l, err := alert.ParseLevel(a.Labels[alert.LabelLevel]); err == nil {
		a.Labels[alert.LabelLevel] = string(l)
	}
	if ev := a.Labels[alert.LabelEvent]; ev != "" {
		a.Labels[alert.LabelFamily] = alert.Family(ev)
	}
	if a.Annotations != nil {
		a.Annotations = a.Annotations.Clone()
	}
	if err := a.Validate(); err != nil {
		return a, err
	}
	if b, _ := json.Marshal(a.Labels); len(b) > 16<<10 {
		return a, fmt.Errorf("%w: labels are larger than 16 KiB", ErrInvalid)
	}
	if b, _ := json.Marshal(a.Annotations); len(b) > 64<<10 {
		return a, fmt.Errorf("%w: annotations are larger than 64 KiB", ErrInvalid)
	}
	return a, nil
}

// Raise reports that alerts fire. Raising a firing alert again (same
// labels) refreshes it: its annotations and end are replaced, and with a
// resolve_timeout, its end moves on. The alerts are stored, in one
// transaction, before Raise returns; if one is invalid, none is. Labels job,
// alertname (the event) and level are required; the notifier adds family.
func (n *Notifier) Raise(ctx context.Context, alerts ...Alert) error {
	norm := make([]Alert, len(alerts))
	for i, a := range alerts {
		a, err := normalize(a)
		if err != nil {
			if len(alerts) > 1 {
				return fmt.Errorf("alert %d: %w", i, err)
			}
			return err
		}
		norm[i] = a
	}
	if len(norm) == 0 {
		return nil
	}
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return ErrStopped
	}
	var order []*entry
	err := n.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		pending := map[alert.Fingerprint]*entry{}
		for _, a := range norm {
			fp := a.Fingerprint()
			old := pending[fp]
			if old == nil {
				old = n.p.alerts[fp]
			}
			e, isNew := n.p.prepareRaiseOn(a, now, old)
			var err error
			if isNew {
				err = insertAlert(tx, e, now)
			} else {
				err = refreshAlert(tx, e, now)
			}
			if err != nil {
				return err
			}
			pending[fp] = e
			order = append(order, e)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("notify: store alert: %w", err)
	}
	for _, e := range order {
		n.p.install(e, now)
	}
	n.m.alerts.WithLabelValues("raised").Add(float64(len(order)))
	n.poke()
	return nil
}

// Resolve reports that the alert with a's labels has ended, at a.EndsAt or,
// if that is zero, now. Resolving an alert that does not fire does nothing.
func (n *Notifier) Resolve(ctx context.Context, a Alert) error {
	a, err := normalize(a)
	if err != nil {
		return err
	}
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return ErrStopped
	}
	e := n.p.prepareResolve(a.Labels, a.EndsAt, now)
	if e == nil {
		return nil
	}
	if err := refreshAlert(n.db.WithContext(ctx), e, now); err != nil {
		return fmt.Errorf("notify: store alert: %w", err)
	}
	e.persistedResolved = e.a.Resolved(now)
	n.p.install(e, now)
	n.m.alerts.WithLabelValues("resolved").Inc()
	n.poke()
	return nil
}

// ResolveWhere resolves, at the given time (zero: now), every firing alert
// whose labels include all the given ones, and says how many it resolved.
// It suits producers that know an alert by part of its labels: the monitor
// resolves by its firing key, rule and job.
func (n *Notifier) ResolveWhere(ctx context.Context, ls Labels, at time.Time) (int, error) {
	if len(ls) == 0 {
		return 0, fmt.Errorf("%w: ResolveWhere needs at least one label", ErrInvalid)
	}
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return 0, ErrStopped
	}
	var todo []*entry
	for _, e := range n.p.alerts {
		if e.a.Resolved(now) {
			continue
		}
		match := true
		for k, v := range ls {
			if e.a.Labels[k] != v {
				match = false
				break
			}
		}
		if match {
			if r := n.p.prepareResolve(e.a.Labels, at, now); r != nil {
				todo = append(todo, r)
			}
		}
	}
	if len(todo) == 0 {
		return 0, nil
	}
	err := n.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, e := range todo {
			if err := refreshAlert(tx, e, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("notify: store alert: %w", err)
	}
	for _, e := range todo {
		e.persistedResolved = e.a.Resolved(now)
		n.p.install(e, now)
	}
	n.m.alerts.WithLabelValues("resolved").Add(float64(len(todo)))
	n.poke()
	return len(todo), nil
}

// Firing returns the alerts that fire now (including silenced and inhibited
// ones), for a producer to reconcile with after a restart: the notifier
// remembers what fired across restarts, a producer may not.
func (n *Notifier) Firing() []Alert {
	now := n.now()
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Alert
	for _, e := range n.p.alerts {
		if !e.a.Resolved(now) {
			a := e.a
			a.Labels, a.Annotations = a.Labels.Clone(), a.Annotations.Clone()
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Labels.String() < out[j].Labels.String() })
	return out
}

func (n *Notifier) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// maxFlushWait bounds the flush loop's sleep, so alerts that resolve by
// timeout outside any group are noticed.
const maxFlushWait = time.Minute

func (n *Notifier) runFlush(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		n.flushOnce(ctx)
		n.mu.Lock()
		next := n.p.nextDue()
		n.mu.Unlock()
		wait := maxFlushWait
		if !next.IsZero() {
			if d := next.Sub(n.now()); d < wait {
				wait = max(d, 0)
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-timer.C:
		}
	}
}

// flushOnce flushes the due groups and stores what they decided.
func (n *Notifier) flushOnce(ctx context.Context) {
	now := n.now()
	n.mu.Lock()
	b := n.p.flush(now)
	n.mu.Unlock()
	err := storeBatch(n.db.WithContext(ctx), b)
	n.mu.Lock()
	n.p.commit(b, err == nil)
	n.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			n.log.WithError(err).Warn("store notifications; trying again shortly")
		}
		return
	}
	for _, note := range b.notes {
		n.m.notifications.WithLabelValues(note.receiver).Inc()
	}
	if len(b.notes) > 0 {
		n.out.poke()
	}
}

// load fills the pipeline from the database.
func (n *Notifier) load(ctx context.Context) error {
	db := n.db.WithContext(ctx)
	now := n.now()
	var sils []SilenceRecord
	if err := db.Where("ends_at > ?", utc(now)).Find(&sils).Error; err != nil {
		return err
	}
	var logs []GroupLogRecord
	if err := db.Find(&logs).Error; err != nil {
		return err
	}
	var firing []AlertRecord
	if err := db.Where("state = ?", alert.StatusFiring).Order("id").Find(&firing).Error; err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := range sils {
		s, err := silenceOf(&sils[i])
		if err != nil {
			n.log.WithError(err).WithField("silence", sils[i].ID).Warn("unreadable silence ignored")
			continue
		}
		n.p.silences.silences[s.ID] = s
	}
	told := map[alert.Fingerprint]bool{}
	for _, l := range logs {
		e := &nflogEntry{firing: fpSetOf(l.Firing), resolved: fpSetOf(l.Resolved), at: l.NotifiedAt}
		n.p.nflog[l.GroupKey] = e
		for fp := range e.firing {
			told[fp] = true
		}
	}
	loaded := map[alert.Fingerprint]bool{}
	for i := range firing {
		e, err := entryOf(&firing[i], false)
		if err != nil {
			n.log.WithError(err).WithField("alert", firing[i].ID).Warn("unreadable alert ignored")
			continue
		}
		n.p.install(e, now)
		loaded[e.fp] = true
	}
	// Alerts that resolved after their receivers were told they fire, but
	// before the resolved notice went out: load them so it does.
	var missing []string
	for fp := range told {
		if !loaded[fp] {
			missing = append(missing, fp.String())
		}
	}
	for _, chunk := range chunks(missing, 500) {
		var recs []AlertRecord
		if err := db.Where("fingerprint IN ?", chunk).Order("id").Find(&recs).Error; err != nil {
			return err
		}
		latest := map[string]*AlertRecord{}
		for i := range recs {
			latest[recs[i].Fingerprint] = &recs[i]
		}
		for _, r := range latest {
			if e, err := entryOf(r, true); err == nil && !loaded[e.fp] {
				n.p.install(e, now)
			}
		}
	}
	// Log entries of groups that no alert makes any more (the routes
	// changed) are dropped, from the database with the next flush.
	for key := range n.p.nflog {
		if n.p.groups[key] == nil {
			delete(n.p.nflog, key)
			n.p.staleLogs = append(n.p.staleLogs, key)
		}
	}
	return nil
}

// entryOf rebuilds an alert entry from its row.
func entryOf(r *AlertRecord, resolved bool) (*entry, error) {
	var a alert.Alert
	if err := json.Unmarshal([]byte(r.Labels), &a.Labels); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(r.Annotations), &a.Annotations); err != nil {
		return nil, err
	}
	a.StartsAt, a.GeneratorURL = r.StartsAt.UTC(), r.GeneratorURL
	if r.EndsAt != nil {
		a.EndsAt = r.EndsAt.UTC()
	}
	fp := a.Fingerprint()
	if fp.String() != r.Fingerprint {
		return nil, fmt.Errorf("fingerprint %s of the labels differs from the stored %s", fp, r.Fingerprint)
	}
	return &entry{a: a, fp: fp, id: r.ID, persistedResolved: resolved || r.State == alert.StatusResolved,
		silencedBy: splitIDs(r.SilencedBy), inhibitedBy: splitIDs(r.InhibitedBy)}, nil
}

func chunks(s []string, n int) [][]string {
	var out [][]string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	if len(s) > 0 {
		out = append(out, s)
	}
	return out
}
