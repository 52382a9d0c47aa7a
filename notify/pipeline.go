package notify

import (
	"sort"
	"time"

	"github.com/tidewatch/tidewatch/notify/alert"
)

// The pipeline is the notifier's in-memory state and every decision it makes,
// as functions of that state and the time it is given, so that grouping,
// inhibition, silences, deduplication, repeats and resolved notices are
// tested without clocks or goroutines. It follows Alertmanager's dispatcher
// and notification pipeline:
//
//	raise/resolve ─▶ fingerprint ─▶ route ─▶ aggregation group
//	group timer (group_wait, then group_interval) ─▶ flush:
//	    inhibit ─▶ silence ─▶ dedup against the notification log
//	    (new firing alerts, newly resolved ones, or repeat_interval passed)
//	    ─▶ notification ─▶ outbox rows, one per channel
//
// Flush only decides; the caller stores the batch (notifications, outbox
// rows, the notification log and alert rows in one transaction) and then
// commits it to memory, or aborts it if the store failed, in which case the
// groups are flushed again shortly.
//
// The pipeline is not safe for concurrent use: the Notifier locks around it.
type pipeline struct {
	root           *route
	rules          []*inhibitRule
	receivers      map[string]*receiverConf
	resolveTimeout time.Duration
	externalURL    string
	silences       *silencer

	alerts    map[alert.Fingerprint]*entry
	groups    map[string]*group
	nflog     map[string]*nflogEntry
	staleLogs []string // notification log keys of ended groups, deleted with the next batch
	seq       uint64
}

// retryFlushDelay is how soon a group whose flush could not be stored is
// flushed again.
const retryFlushDelay = 5 * time.Second

// receiverConf is what the pipeline needs of a receiver.
type receiverConf struct {
	name     string
	channels []channelConf
}

type channelConf struct {
	name         string // receiver/name
	sendResolved bool
}

func (r *receiverConf) sendResolved() bool {
	for _, c := range r.channels {
		if c.sendResolved {
			return true
		}
	}
	return false
}

// entry is one alert instance the pipeline knows.
type entry struct {
	a       alert.Alert
	fp      alert.Fingerprint
	id      uint64 // row in notify_alerts
	version uint64
	// persistedResolved: the row says resolved.
	persistedResolved bool
	// silencedBy and inhibitedBy as last stored.
	silencedBy, inhibitedBy []string
	groups                  map[string]bool
}

// group is an aggregation group.
type group struct {
	key     string
	route   *route
	labels  alert.Labels
	alerts  map[alert.Fingerprint]bool
	next    time.Time
	flushed bool
	pending bool // a flush is being stored
}

// nflogEntry is what the last notification of a group told its receiver.
type nflogEntry struct {
	firing   map[alert.Fingerprint]bool
	resolved map[alert.Fingerprint]bool
	at       time.Time
}

func newPipeline(root *route, rules []*inhibitRule, receivers map[string]*receiverConf, resolveTimeout time.Duration, externalURL string) *pipeline {
	return &pipeline{root: root, rules: rules, receivers: receivers, resolveTimeout: resolveTimeout, externalURL: externalURL,
		silences: &silencer{silences: map[string]*Silence{}},
		alerts:   map[alert.Fingerprint]*entry{}, groups: map[string]*group{}, nflog: map[string]*nflogEntry{}}
}

// prepareRaise returns the entry an incoming alert makes, without changing
// anything: the firing instance it refreshes (same fingerprint, not resolved
// yet: the earlier start is kept, annotations and end are replaced) or a new
// instance. The caller stores it and then installs it.
func (p *pipeline) prepareRaise(a alert.Alert, now time.Time) (e *entry, isNew bool) {
	return p.prepareRaiseOn(a, now, p.alerts[a.Fingerprint()])
}

// prepareRaiseOn is prepareRaise against a given current entry (nil: none),
// for a batch that raises one alert twice.
func (p *pipeline) prepareRaiseOn(a alert.Alert, now time.Time, old *entry) (e *entry, isNew bool) {
	if a.StartsAt.IsZero() {
		a.StartsAt = now
	}
	if a.EndsAt.IsZero() && p.resolveTimeout > 0 {
		a.EndsAt = now.Add(p.resolveTimeout)
	}
	fp := a.Fingerprint()
	if old != nil && !old.a.Resolved(now) {
		n := *old
		if old.a.StartsAt.Before(a.StartsAt) {
			a.StartsAt = old.a.StartsAt
		}
		n.a = a
		return &n, false
	}
	return &entry{a: a, fp: fp}, true
}

// prepareResolve returns the entry that resolving the alert with these
// labels at the given time makes, or nil if no such alert fires.
func (p *pipeline) prepareResolve(ls alert.Labels, at, now time.Time) *entry {
	old := p.alerts[ls.Fingerprint()]
	if old == nil || old.a.Resolved(now) {
		return nil
	}
	if at.IsZero() {
		at = now
	}
	n := *old
	n.a.EndsAt = at
	if at.Before(n.a.StartsAt) {
		n.a.EndsAt = n.a.StartsAt
	}
	return &n
}

// install puts a stored entry into the state and its groups.
func (p *pipeline) install(e *entry, now time.Time) {
	p.seq++
	e.version = p.seq
	if old := p.alerts[e.fp]; old != nil {
		e.groups = old.groups
	}
	if e.groups == nil {
		e.groups = map[string]bool{}
	}
	p.alerts[e.fp] = e
	for _, r := range p.root.match(e.a.Labels) {
		if r.receiver == "" {
			continue // recorded only
		}
		gl := r.groupLabels(e.a.Labels)
		key := r.groupKey(gl)
		g := p.groups[key]
		if g == nil {
			g = &group{key: key, route: r, labels: gl, alerts: map[alert.Fingerprint]bool{}, next: now.Add(r.groupWait)}
			p.groups[key] = g
		}
		// An alert that has been around longer than group_wait (one
		// reloaded after a restart) need not wait again.
		if !g.flushed && !g.pending && e.a.StartsAt.Add(r.groupWait).Before(now) {
			g.next = now
		}
		g.alerts[e.fp] = true
		e.groups[key] = true
	}
}

// nextDue is when the next group is due, or zero if none is waiting.
func (p *pipeline) nextDue() time.Time {
	var next time.Time
	for _, g := range p.groups {
		if !g.pending && (next.IsZero() || g.next.Before(next)) {
			next = g.next
		}
	}
	return next
}

// flushBatch is what one flush decided, to be stored and then committed.
type flushBatch struct {
	now          time.Time
	groups       []*groupFlush
	notes        []*pendingNote
	updates      []*alertUpdate
	nflogDeletes []string
	orphans      []*entry
}

type groupFlush struct {
	g *group
	// resolved alerts seen, with their versions: removed from the group on
	// commit unless they changed meanwhile.
	resolved map[alert.Fingerprint]uint64
	newLog   *nflogEntry // nil: the notification log is unchanged
}

// alertUpdate is a change of an alert row.
type alertUpdate struct {
	e                       *entry
	resolved                bool
	muteChanged             bool
	silencedBy, inhibitedBy []string
}

// pendingNote is a notification to store, with the channels to deliver it to.
type pendingNote struct {
	uid      string
	groupKey string
	receiver string
	msg      alert.Message
	alertIDs []uint64
	channels []string
}

// flush decides for every due group.
func (p *pipeline) flush(now time.Time) *flushBatch {
	b := &flushBatch{now: now}
	for _, k := range p.staleLogs {
		if p.nflog[k] == nil {
			b.nflogDeletes = append(b.nflogDeletes, k)
		}
	}
	p.staleLogs = nil
	updates := map[alert.Fingerprint]*alertUpdate{}
	upd := func(e *entry) *alertUpdate {
		u := updates[e.fp]
		if u == nil {
			u = &alertUpdate{e: e}
			updates[e.fp] = u
		}
		return u
	}
	keys := make([]string, 0, len(p.groups))
	for k, g := range p.groups {
		if !g.pending && !g.next.After(now) {
			keys = append(keys, k)
		}
	}
	if len(keys) > 0 {
		sort.Strings(keys)
		firing := map[alert.Fingerprint]alert.Labels{}
		for fp, e := range p.alerts {
			if !e.a.Resolved(now) {
				firing[fp] = e.a.Labels
			}
		}
		inh := newInhibitor(p.rules, firing)
		for _, k := range keys {
			p.flushGroup(p.groups[k], now, inh, b, upd)
		}
	}
	// Alerts in no group (their routes have no receiver) still resolve.
	for _, e := range p.alerts {
		if len(e.groups) == 0 && e.a.Resolved(now) {
			if !e.persistedResolved {
				upd(e).resolved = true
			}
			b.orphans = append(b.orphans, e)
		}
	}
	for _, u := range updates {
		b.updates = append(b.updates, u)
	}
	sort.Slice(b.updates, func(i, j int) bool { return b.updates[i].e.id < b.updates[j].e.id })
	return b
}

func (p *pipeline) flushGroup(g *group, now time.Time, inh *inhibitor, b *flushBatch, upd func(*entry) *alertUpdate) {
	log := p.nflog[g.key]
	gf := &groupFlush{g: g, resolved: map[alert.Fingerprint]uint64{}}
	var firing, resolved []*entry
	for fp := range g.alerts {
		e := p.alerts[fp]
		if e == nil {
			continue
		}
		if e.a.Resolved(now) {
			gf.resolved[fp] = e.version
			if !e.persistedResolved {
				upd(e).resolved = true
			}
			// Only alerts the receiver was told of are reported resolved.
			if log != nil && log.firing[fp] {
				resolved = append(resolved, e)
			}
			continue
		}
		sil := p.silences.silencedBy(e.a.Labels, now)
		inhb := inh.inhibitedBy(fp, e.a.Labels)
		if !equalStrings(sil, e.silencedBy) || !equalStrings(inhb, e.inhibitedBy) {
			u := upd(e)
			u.muteChanged, u.silencedBy, u.inhibitedBy = true, sil, inhb
		}
		if len(sil) > 0 || len(inhb) > 0 {
			continue // muted: recorded, not notified
		}
		firing = append(firing, e)
	}
	g.pending, g.flushed = true, true
	g.next = now.Add(g.route.groupInterval)
	b.groups = append(b.groups, gf)

	rc := p.receivers[g.route.receiver]
	if rc == nil || len(firing)+len(resolved) == 0 {
		return
	}
	if !needsUpdate(log, firing, resolved, rc.sendResolved(), g.route.repeatInterval, now) {
		return
	}
	gf.newLog = &nflogEntry{firing: fpSet(firing), resolved: fpSet(resolved), at: now}
	note := p.note(g, rc, firing, resolved, now)
	if len(note.channels) > 0 {
		b.notes = append(b.notes, note)
	}
}

// needsUpdate is Alertmanager's deduplication: notify of a group when it
// has firing alerts the receiver was not told of, when every alert it was
// told of has resolved, when alerts resolved and the receiver wants to know,
// or when repeat_interval has passed since the last notification.
func needsUpdate(log *nflogEntry, firing, resolved []*entry, sendResolved bool, repeat time.Duration, now time.Time) bool {
	if log == nil {
		return len(firing) > 0
	}
	for _, e := range firing {
		if !log.firing[e.fp] {
			return true
		}
	}
	if len(firing) == 0 {
		// Sent even without send_resolved, to clear the log's firing set;
		// the channels that do not want it are skipped.
		return len(log.firing) > 0
	}
	if sendResolved {
		for _, e := range resolved {
			if !log.resolved[e.fp] {
				return true
			}
		}
	}
	return !log.at.Add(repeat).After(now)
}

// note builds the notification of a group.
func (p *pipeline) note(g *group, rc *receiverConf, firing, resolved []*entry, now time.Time) *pendingNote {
	n := &pendingNote{uid: newID(), groupKey: g.key, receiver: rc.name}
	var as alert.Alerts
	var labels, annotations []alert.Labels
	for _, set := range [][]*entry{firing, resolved} {
		for _, e := range set {
			as = append(as, alert.NewMessageAlert(e.a, now))
			labels = append(labels, e.a.Labels)
			annotations = append(annotations, e.a.Annotations)
			n.alertIDs = append(n.alertIDs, e.id)
		}
	}
	alert.SortAlerts(as)
	status := alert.StatusResolved
	if len(firing) > 0 {
		status = alert.StatusFiring
	}
	n.msg = alert.Message{NotificationID: n.uid, Receiver: rc.name, Status: status, GroupKey: g.key,
		GroupLabels: g.labels.Clone(), CommonLabels: alert.Common(labels), CommonAnnotations: alert.Common(annotations),
		ExternalURL: p.externalURL, Alerts: as, Time: now}
	for _, c := range rc.channels {
		if len(firing) == 0 && !c.sendResolved {
			continue
		}
		n.channels = append(n.channels, c.name)
	}
	return n
}

// commit applies a stored batch (ok) or gives its groups another try soon
// (not ok).
func (p *pipeline) commit(b *flushBatch, ok bool) {
	if !ok {
		for _, gf := range b.groups {
			gf.g.pending = false
			d := retryFlushDelay
			if gi := gf.g.route.groupInterval; gi < d {
				d = gi
			}
			gf.g.next = b.now.Add(d)
		}
		p.staleLogs = append(p.staleLogs, b.nflogDeletes...)
		return
	}
	for _, u := range b.updates {
		e := p.alerts[u.e.fp]
		if e == nil || e.id != u.e.id {
			continue
		}
		if u.resolved {
			e.persistedResolved = true
		}
		if u.muteChanged {
			e.silencedBy, e.inhibitedBy = u.silencedBy, u.inhibitedBy
		}
	}
	for _, gf := range b.groups {
		g := gf.g
		g.pending = false
		if gf.newLog != nil {
			p.nflog[g.key] = gf.newLog
		}
		for fp, v := range gf.resolved {
			e := p.alerts[fp]
			if e == nil || e.version != v {
				continue
			}
			delete(g.alerts, fp)
			delete(e.groups, g.key)
			if len(e.groups) == 0 {
				delete(p.alerts, fp)
			}
		}
		if len(g.alerts) == 0 && p.groups[g.key] == g {
			delete(p.groups, g.key)
			delete(p.nflog, g.key)
			p.staleLogs = append(p.staleLogs, g.key)
		}
	}
	for _, e := range b.orphans {
		if p.alerts[e.fp] == e && len(e.groups) == 0 {
			delete(p.alerts, e.fp)
		}
	}
}

func fpSet(es []*entry) map[alert.Fingerprint]bool {
	m := make(map[alert.Fingerprint]bool, len(es))
	for _, e := range es {
		m[e.fp] = true
	}
	return m
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
