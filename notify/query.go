package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tidewatch/tidewatch/notify/alert"
)

// AlertQuery selects alerts from the history.
type AlertQuery struct {
	Job   string
	Event string
	// States are firing, resolved, suppressed (firing, and silenced or
	// inhibited) or active (firing, not suppressed); any of them.
	States []string
	// Levels are any of FATAL, ERROR, WARN, INFO.
	Levels []string
	// Since keeps the alerts that fired at some time since then: those that
	// have not resolved, or resolved after it.
	Since time.Time
	// Limit bounds the answer (newest first); 0 means 100.
	Limit int
}

// AlertView is an alert of the history with every notification that
// reported it and every attempt at delivering those.
type AlertView struct {
	ID            uint64             `json:"id"`
	Fingerprint   string             `json:"fingerprint"`
	Job           string             `json:"job"`
	Event         string             `json:"event"`
	Level         string             `json:"level"`
	State         string             `json:"state"`
	Suppressed    bool               `json:"suppressed"`
	SilencedBy    []string           `json:"silencedBy"`
	InhibitedBy   []string           `json:"inhibitedBy"`
	Labels        alert.Labels       `json:"labels"`
	Annotations   alert.Labels       `json:"annotations"`
	StartsAt      time.Time          `json:"startsAt"`
	EndsAt        *time.Time         `json:"endsAt,omitempty"`
	UpdatedAt     time.Time          `json:"updatedAt"`
	GeneratorURL  string             `json:"generatorURL,omitempty"`
	Notifications []NotificationView `json:"notifications"`
}

// NotificationView is one notification that reported an alert.
type NotificationView struct {
	ID         string         `json:"id"`
	Receiver   string         `json:"receiver"`
	Status     string         `json:"status"`
	GroupKey   string         `json:"groupKey"`
	CreatedAt  time.Time      `json:"createdAt"`
	Deliveries []DeliveryView `json:"deliveries"`
}

// DeliveryView is a notification's delivery through one channel.
type DeliveryView struct {
	ID             uint64        `json:"id"`
	Channel        string        `json:"channel"`
	IdempotencyKey string        `json:"idempotencyKey"`
	Status         string        `json:"status"`
	Attempts       int           `json:"attempts"`
	NextAttemptAt  *time.Time    `json:"nextAttemptAt,omitempty"`
	DeliveredAt    *time.Time    `json:"deliveredAt,omitempty"`
	LastError      string        `json:"lastError,omitempty"`
	History        []AttemptView `json:"history"`
}

// AttemptView is one delivery attempt.
type AttemptView struct {
	Attempt    int        `json:"attempt"`
	StartedAt  time.Time  `json:"startedAt"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
	Outcome    string     `json:"outcome"`
	Error      string     `json:"error,omitempty"`
}

// Alert query states.
const (
	StateFiring     = "firing"
	StateResolved   = "resolved"
	StateSuppressed = "suppressed"
	StateActive     = "active"
)

// Alerts answers a query of the alert history, newest first.
func (n *Notifier) Alerts(ctx context.Context, q AlertQuery) ([]AlertView, error) {
	return queryAlerts(n.db.WithContext(ctx), q, n.now())
}

func queryAlerts(db *gorm.DB, q AlertQuery, now time.Time) ([]AlertView, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	now = utc(now)
	tx := db.Model(&AlertRecord{})
	if q.Job != "" {
		tx = tx.Where("job = ?", q.Job)
	}
	if q.Event != "" {
		tx = tx.Where("event = ?", q.Event)
	}
	if len(q.Levels) > 0 {
		tx = tx.Where("level IN ?", q.Levels)
	}
	if !q.Since.IsZero() {
		tx = tx.Where("(ends_at IS NULL OR ends_at >= ?)", utc(q.Since))
	}
	if len(q.States) > 0 {
		// A firing row whose end has passed has resolved by timeout; the
		// row says so at its group's next flush.
		const firing = "(state = 'firing' AND (ends_at IS NULL OR ends_at > ?))"
		const muted = "(silenced_by <> '' OR inhibited_by <> '')"
		var conds []string
		var args []any
		for _, s := range q.States {
			switch s {
			case StateFiring:
				conds, args = append(conds, firing), append(args, now)
			case StateResolved:
				conds, args = append(conds, "(state = 'resolved' OR ends_at <= ?)"), append(args, now)
			case StateSuppressed:
				conds, args = append(conds, "("+firing+" AND "+muted+")"), append(args, now)
			case StateActive:
				conds, args = append(conds, "("+firing+" AND NOT "+muted+")"), append(args, now)
			default:
				return nil, fmt.Errorf("%w: state %q (want firing, resolved, suppressed or active)", ErrInvalid, s)
			}
		}
		tx = tx.Where("("+strings.Join(conds, " OR ")+")", args...)
	}
	var recs []AlertRecord
	if err := tx.Order("starts_at DESC, id DESC").Limit(q.Limit).Find(&recs).Error; err != nil {
		return nil, err
	}
	views := make([]AlertView, len(recs))
	ids := make([]uint64, len(recs))
	for i, r := range recs {
		v := AlertView{ID: r.ID, Fingerprint: r.Fingerprint, Job: r.Job, Event: r.Event, Level: r.Level, State: r.State,
			SilencedBy: nonNilStrings(splitIDs(r.SilencedBy)), InhibitedBy: nonNilStrings(splitIDs(r.InhibitedBy)),
			StartsAt: r.StartsAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), GeneratorURL: r.GeneratorURL, Notifications: []NotificationView{}}
		_ = json.Unmarshal([]byte(r.Labels), &v.Labels)
		_ = json.Unmarshal([]byte(r.Annotations), &v.Annotations)
		if r.EndsAt != nil {
			t := r.EndsAt.UTC()
			v.EndsAt = &t
			if !t.After(now) {
				v.State = StateResolved
			}
		}
		v.Suppressed = v.State == StateFiring && len(v.SilencedBy)+len(v.InhibitedBy) > 0
		views[i], ids[i] = v, r.ID
	}
	if err := attachNotifications(db, views, ids); err != nil {
		return nil, err
	}
	return views, nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func chunkIDs(ids []uint64, n int) [][]uint64 {
	var out [][]uint64
	for len(ids) > n {
		out = append(out, ids[:n])
		ids = ids[n:]
	}
	if len(ids) > 0 {
		out = append(out, ids)
	}
	return out
}

// attachNotifications fills in the notifications, deliveries and attempts
// of the alerts.
func attachNotifications(db *gorm.DB, views []AlertView, ids []uint64) error {
	var links []NotificationAlert
	for _, c := range chunkIDs(ids, 500) {
		var part []NotificationAlert
		if err := db.Session(&gorm.Session{NewDB: true}).Where("alert_id IN ?", c).Find(&part).Error; err != nil {
			return err
		}
		links = append(links, part...)
	}
	if len(links) == 0 {
		return nil
	}
	nids := map[uint64]bool{}
	for _, l := range links {
		nids[l.NotificationID] = true
	}
	var nidList []uint64
	for id := range nids {
		nidList = append(nidList, id)
	}
	notes := map[uint64]*NotificationRecord{}
	deliveries := map[uint64][]*DeliveryRecord{}
	var dids []uint64
	for _, c := range chunkIDs(nidList, 500) {
		var ns []NotificationRecord
		if err := db.Session(&gorm.Session{NewDB: true}).Select("id, uid, group_key, receiver, status, created_at").
			Where("id IN ?", c).Find(&ns).Error; err != nil {
			return err
		}
		for i := range ns {
			notes[ns[i].ID] = &ns[i]
		}
		var ds []DeliveryRecord
		if err := db.Session(&gorm.Session{NewDB: true}).Where("notification_id IN ?", c).Order("id").Find(&ds).Error; err != nil {
			return err
		}
		for i := range ds {
			deliveries[ds[i].NotificationID] = append(deliveries[ds[i].NotificationID], &ds[i])
			dids = append(dids, ds[i].ID)
		}
	}
	attempts := map[uint64][]AttemptView{}
	for _, c := range chunkIDs(dids, 500) {
		var as []AttemptRecord
		if err := db.Session(&gorm.Session{NewDB: true}).Where("delivery_id IN ?", c).Order("id").Find(&as).Error; err != nil {
			return err
		}
		for _, a := range as {
			v := AttemptView{Attempt: a.Attempt, StartedAt: a.StartedAt.UTC(), Outcome: a.Outcome, Error: a.Error}
			if a.FinishedAt != nil {
				t := a.FinishedAt.UTC()
				v.FinishedAt = &t
			}
			attempts[a.DeliveryID] = append(attempts[a.DeliveryID], v)
		}
	}
	byAlert := map[uint64][]uint64{}
	for _, l := range links {
		byAlert[l.AlertID] = append(byAlert[l.AlertID], l.NotificationID)
	}
	for i := range views {
		nl := byAlert[views[i].ID]
		sort.Slice(nl, func(a, b int) bool { return nl[a] < nl[b] })
		for _, nid := range nl {
			nr := notes[nid]
			if nr == nil {
				continue
			}
			nv := NotificationView{ID: nr.UID, Receiver: nr.Receiver, Status: nr.Status, GroupKey: nr.GroupKey,
				CreatedAt: nr.CreatedAt.UTC(), Deliveries: []DeliveryView{}}
			for _, d := range deliveries[nid] {
				dv := DeliveryView{ID: d.ID, Channel: d.Channel, IdempotencyKey: d.IdempotencyKey, Status: d.Status,
					Attempts: d.Attempts, LastError: d.LastError, History: attempts[d.ID]}
				if dv.History == nil {
					dv.History = []AttemptView{}
				}
				if d.Status == DeliveryPending {
					t := d.NextAttemptAt.UTC()
					dv.NextAttemptAt = &t
				}
				if d.DeliveredAt != nil {
					t := d.DeliveredAt.UTC()
					dv.DeliveredAt = &t
				}
				nv.Deliveries = append(nv.Deliveries, dv)
			}
			views[i].Notifications = append(views[i].Notifications, nv)
		}
	}
	return nil
}

// silenceOf reads a silence row.
func silenceOf(r *SilenceRecord) (*Silence, error) {
	s := &Silence{ID: r.ID, StartsAt: r.StartsAt.UTC(), EndsAt: r.EndsAt.UTC(), CreatedBy: r.CreatedBy,
		Comment: r.Comment, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	if err := json.Unmarshal([]byte(r.Matchers), &s.Matchers); err != nil {
		return nil, err
	}
	return s, nil
}

func silenceRecord(s *Silence) *SilenceRecord {
	return &SilenceRecord{ID: s.ID, Matchers: mustJSON(s.Matchers), StartsAt: utc(s.StartsAt), EndsAt: utc(s.EndsAt),
		CreatedBy: s.CreatedBy, Comment: s.Comment, CreatedAt: utc(s.CreatedAt), UpdatedAt: utc(s.UpdatedAt)}
}

// Silences lists silences, newest first; state "" means all, else pending,
// active or expired.
func (n *Notifier) Silences(ctx context.Context, state string) ([]*Silence, error) {
	switch state {
	case "", SilencePending, SilenceActive, SilenceExpired:
	default:
		return nil, fmt.Errorf("%w: state %q (want pending, active or expired)", ErrInvalidSilence, state)
	}
	var recs []SilenceRecord
	if err := n.db.WithContext(ctx).Order("created_at DESC, id").Find(&recs).Error; err != nil {
		return nil, err
	}
	now := n.now()
	out := []*Silence{}
	for i := range recs {
		s, err := silenceOf(&recs[i])
		if err != nil {
			continue
		}
		if state == "" || s.State(now) == state {
			out = append(out, s)
		}
	}
	return out, nil
}

// Silence returns one silence.
func (n *Notifier) Silence(ctx context.Context, id string) (*Silence, error) {
	var r SilenceRecord
	err := n.db.WithContext(ctx).Where("id = ?", id).First(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("%w: silence %q", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	return silenceOf(&r)
}

// PutSilence creates a silence (s.ID empty) or changes one that has not
// expired. StartsAt defaults to now. It returns the stored silence.
func (n *Notifier) PutSilence(ctx context.Context, s Silence) (*Silence, error) {
	now := n.now()
	if s.StartsAt.IsZero() {
		s.StartsAt = now
	}
	s.StartsAt, s.EndsAt = s.StartsAt.UTC(), s.EndsAt.UTC()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if !s.EndsAt.After(now) {
		return nil, fmt.Errorf("%w: endsAt is in the past", ErrInvalidSilence)
	}
	db := n.db.WithContext(ctx)
	if s.ID == "" {
		s.ID, s.CreatedAt, s.UpdatedAt = newID(), now, now
		if err := db.Create(silenceRecord(&s)).Error; err != nil {
			return nil, err
		}
	} else {
		old, err := n.Silence(ctx, s.ID)
		if err != nil {
			return nil, err
		}
		if old.State(now) == SilenceExpired {
			return nil, fmt.Errorf("%w: %s; create a new one", ErrExpired, s.ID)
		}
		s.CreatedAt, s.UpdatedAt = old.CreatedAt, now
		if err := updateSilence(db, &s); err != nil {
			return nil, err
		}
	}
	n.mu.Lock()
	n.p.silences.silences[s.ID] = &s
	n.mu.Unlock()
	return &s, nil
}

// ExpireSilence ends a silence now. Expiring an expired silence changes nothing.
func (n *Notifier) ExpireSilence(ctx context.Context, id string) (*Silence, error) {
	s, err := n.Silence(ctx, id)
	if err != nil {
		return nil, err
	}
	now := n.now()
	if s.State(now) != SilenceExpired {
		if s.StartsAt.After(now) {
			s.StartsAt = now
		}
		s.EndsAt, s.UpdatedAt = now, now
		if err := updateSilence(n.db.WithContext(ctx), s); err != nil {
			return nil, err
		}
	}
	n.mu.Lock()
	delete(n.p.silences.silences, id)
	n.mu.Unlock()
	return s, nil
}

func updateSilence(db *gorm.DB, s *Silence) error {
	r := silenceRecord(s)
	return db.Model(&SilenceRecord{}).Where("id = ?", s.ID).Updates(map[string]any{
		"matchers": r.Matchers, "starts_at": r.StartsAt, "ends_at": r.EndsAt, "created_by": r.CreatedBy,
		"comment": r.Comment, "updated_at": r.UpdatedAt}).Error
}
