package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tidewatch/tidewatch/notify/alert"
)

// The notifier keeps its state in the daemon's metadata database, in tables
// named notify_*. The daemon's versioned migrations call Migrate (see
// supportlayer/store.go); tests call it directly.
//
// Times are stored in UTC. Text that can grow (labels, payloads) has no size,
// so that MySQL makes it LONGTEXT.

// AlertRecord is one alert instance: from when it started firing until it
// resolved. A fingerprint fires again as a new record.
type AlertRecord struct {
	ID           uint64 `gorm:"primaryKey"`
	Fingerprint  string `gorm:"size:16;index"`
	State        string `gorm:"size:16;index"` // firing or resolved
	Job          string `gorm:"size:255;index"`
	Event        string `gorm:"size:255"`
	Level        string `gorm:"size:8"`
	Labels       string // JSON object
	Annotations  string // JSON object
	GeneratorURL string `gorm:"size:1024"`
	StartsAt     time.Time
	// EndsAt is when it resolved or, while it fires, when it will resolve
	// unless raised again (nil: not before Resolve).
	EndsAt *time.Time
	// SilencedBy and InhibitedBy list silence ids and alert fingerprints,
	// comma-separated, as of the last flush of the alert's groups.
	SilencedBy  string    `gorm:"size:1024"`
	InhibitedBy string    `gorm:"size:1024"`
	CreatedAt   time.Time `gorm:"index;autoCreateTime:false"`
	UpdatedAt   time.Time `gorm:"autoUpdateTime:false"`
}

func (AlertRecord) TableName() string { return "notify_alerts" }

// NotificationRecord is one notification of a group to a receiver.
type NotificationRecord struct {
	ID        uint64 `gorm:"primaryKey"`
	UID       string `gorm:"size:32;uniqueIndex"`
	GroupKey  string
	Receiver  string    `gorm:"size:64"`
	Status    string    `gorm:"size:16"`
	Payload   string    // JSON of alert.Message
	CreatedAt time.Time `gorm:"index;autoCreateTime:false"`
}

func (NotificationRecord) TableName() string { return "notify_notifications" }

// NotificationAlert links a notification to the alert records it reported.
type NotificationAlert struct {
	NotificationID uint64 `gorm:"primaryKey;autoIncrement:false"`
	AlertID        uint64 `gorm:"primaryKey;autoIncrement:false;index"`
}

func (NotificationAlert) TableName() string { return "notify_notification_alerts" }

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// DeliveryRecord is the outbox: one row per notification and channel,
// pending until a channel accepts it or the notifier gives up.
type DeliveryRecord struct {
	ID             uint64 `gorm:"primaryKey"`
	NotificationID uint64 `gorm:"index"`
	Receiver       string `gorm:"size:64"`
	// Channel is receiver/name.
	Channel string `gorm:"size:160"`
	// IdempotencyKey is sent with every attempt; receivers deduplicate by it.
	IdempotencyKey string    `gorm:"size:64;uniqueIndex"`
	Status         string    `gorm:"size:16;index:idx_notify_deliveries_due,priority:1"`
	NextAttemptAt  time.Time `gorm:"index:idx_notify_deliveries_due,priority:2"`
	Attempts       int
	// Done lists recipients reached by earlier attempts (JSON array).
	Done        string
	LastError   string     `gorm:"size:2048"`
	CreatedAt   time.Time  `gorm:"autoCreateTime:false"`
	UpdatedAt   time.Time  `gorm:"autoUpdateTime:false"`
	DeliveredAt *time.Time `gorm:""`
}

func (DeliveryRecord) TableName() string { return "notify_deliveries" }

// Attempt outcomes.
const (
	// OutcomeSending is an attempt under way, or one the daemon died in.
	OutcomeSending = "sending"
	// OutcomeInterrupted is an attempt cut short by a stop or a crash: the
	// receiver may or may not have it, so it is sent again.
	OutcomeInterrupted = "interrupted"
	OutcomeDelivered   = "delivered"
	OutcomeRetry       = "retry"
	OutcomeFailed      = "failed"
)

// AttemptRecord is one delivery attempt.
type AttemptRecord struct {
	ID         uint64 `gorm:"primaryKey"`
	DeliveryID uint64 `gorm:"index"`
	Attempt    int
	StartedAt  time.Time
	FinishedAt *time.Time
	Outcome    string `gorm:"size:16"`
	Error      string `gorm:"size:2048"`
}

func (AttemptRecord) TableName() string { return "notify_delivery_attempts" }

// SilenceRecord is a silence.
type SilenceRecord struct {
	ID        string `gorm:"primaryKey;size:32"`
	Matchers  string // JSON array
	StartsAt  time.Time
	EndsAt    time.Time `gorm:"index"`
	CreatedBy string    `gorm:"size:128"`
	Comment   string    `gorm:"size:1024"`
	CreatedAt time.Time `gorm:"autoCreateTime:false"`
	UpdatedAt time.Time `gorm:"autoUpdateTime:false"`
}

func (SilenceRecord) TableName() string { return "notify_silences" }

// GroupLogRecord is the notification log: what the last notification of a
// group told its receiver, so a restarted daemon does not notify again.
type GroupLogRecord struct {
	LogKey     string `gorm:"primaryKey;size:64"` // sha256 of the group key
	GroupKey   string
	Firing     string // JSON array of fingerprints
	Resolved   string // JSON array of fingerprints
	NotifiedAt time.Time
}

func (GroupLogRecord) TableName() string { return "notify_group_log" }

// Models are the notifier's tables, for migrations and for tests that clear them.
func Models() []any {
	return []any{&AlertRecord{}, &NotificationRecord{}, &NotificationAlert{}, &DeliveryRecord{},
		&AttemptRecord{}, &SilenceRecord{}, &GroupLogRecord{}}
}

// Migrate creates the notifier's tables (schema version 1 of notify). The
// daemon runs it as one of its versioned migrations.
func Migrate(tx *gorm.DB) error {
	return tx.Migrator().AutoMigrate(Models()...)
}

func logKey(groupKey string) string {
	s := sha256.Sum256([]byte(groupKey))
	return hex.EncodeToString(s[:])
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps, slices and plain structs are marshalled
	}
	return string(b)
}

func fpList(m map[alert.Fingerprint]bool) []string {
	out := make([]string, 0, len(m))
	for fp := range m {
		out = append(out, fp.String())
	}
	return dedupSorted(out)
}

func fpSetOf(list string) map[alert.Fingerprint]bool {
	var ss []string
	_ = json.Unmarshal([]byte(list), &ss)
	m := map[alert.Fingerprint]bool{}
	for _, s := range ss {
		if fp, err := alert.ParseFingerprint(s); err == nil {
			m[fp] = true
		}
	}
	return m
}

func joinIDs(ids []string) string { return strings.Join(ids, ",") }

func splitIDs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func utc(t time.Time) time.Time { return t.UTC() }

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func newAlertRecord(e *entry, now time.Time) *AlertRecord {
	state := alert.StatusFiring
	if e.a.Resolved(now) {
		state = alert.StatusResolved
	}
	return &AlertRecord{Fingerprint: e.fp.String(), State: state, Job: e.a.Job(), Event: e.a.Event(),
		Level: string(e.a.Level()), Labels: mustJSON(e.a.Labels), Annotations: mustJSON(nonNilLabels(e.a.Annotations)),
		GeneratorURL: e.a.GeneratorURL, StartsAt: utc(e.a.StartsAt), EndsAt: timePtr(e.a.EndsAt),
		CreatedAt: utc(now), UpdatedAt: utc(now)}
}

func nonNilLabels(l alert.Labels) alert.Labels {
	if l == nil {
		return alert.Labels{}
	}
	return l
}

// insertAlert stores a new alert instance and sets its id.
func insertAlert(db *gorm.DB, e *entry, now time.Time) error {
	r := newAlertRecord(e, now)
	if err := db.Create(r).Error; err != nil {
		return err
	}
	e.id = r.ID
	if r.State == alert.StatusResolved {
		e.persistedResolved = true
	}
	return nil
}

// refreshAlert stores a raised-again or resolved alert.
func refreshAlert(db *gorm.DB, e *entry, now time.Time) error {
	state := alert.StatusFiring
	if e.a.Resolved(now) {
		state = alert.StatusResolved
	}
	return db.Model(&AlertRecord{}).Where("id = ?", e.id).Updates(map[string]any{
		"state": state, "annotations": mustJSON(nonNilLabels(e.a.Annotations)), "generator_url": e.a.GeneratorURL,
		"starts_at": utc(e.a.StartsAt), "ends_at": timePtr(e.a.EndsAt), "updated_at": utc(now),
	}).Error
}

// storeBatch writes what a flush decided, in one transaction: alert rows,
// notifications with their outbox rows, and the notification log.
func storeBatch(db *gorm.DB, b *flushBatch) error {
	if len(b.updates) == 0 && len(b.notes) == 0 && len(b.nflogDeletes) == 0 && !anyNewLog(b) {
		return nil
	}
	return db.Transaction(func(tx *gorm.DB) error {
		if len(b.nflogDeletes) > 0 {
			keys := make([]string, len(b.nflogDeletes))
			for i, k := range b.nflogDeletes {
				keys[i] = logKey(k)
			}
			if err := tx.Where("log_key IN ?", keys).Delete(&GroupLogRecord{}).Error; err != nil {
				return err
			}
		}
		for _, u := range b.updates {
			set := map[string]any{"updated_at": utc(b.now)}
			if u.resolved {
				set["state"] = alert.StatusResolved
				set["ends_at"] = timePtr(u.e.a.EndsAt)
			}
			if u.muteChanged {
				set["silenced_by"] = joinIDs(u.silencedBy)
				set["inhibited_by"] = joinIDs(u.inhibitedBy)
			}
			if err := tx.Model(&AlertRecord{}).Where("id = ?", u.e.id).Updates(set).Error; err != nil {
				return err
			}
		}
		for _, n := range b.notes {
			rec := &NotificationRecord{UID: n.uid, GroupKey: n.groupKey, Receiver: n.receiver, Status: n.msg.Status,
				Payload: mustJSON(n.msg), CreatedAt: utc(b.now)}
			if err := tx.Create(rec).Error; err != nil {
				return err
			}
			links := make([]NotificationAlert, 0, len(n.alertIDs))
			for _, id := range n.alertIDs {
				links = append(links, NotificationAlert{NotificationID: rec.ID, AlertID: id})
			}
			if len(links) > 0 {
				if err := tx.CreateInBatches(links, 200).Error; err != nil {
					return err
				}
			}
			for _, ch := range n.channels {
				d := &DeliveryRecord{NotificationID: rec.ID, Receiver: n.receiver, Channel: ch,
					IdempotencyKey: idempotencyKey(n.uid, ch), Status: DeliveryPending, NextAttemptAt: utc(b.now),
					Done: "[]", CreatedAt: utc(b.now), UpdatedAt: utc(b.now)}
				if err := tx.Create(d).Error; err != nil {
					return err
				}
			}
		}
		for _, gf := range b.groups {
			if gf.newLog == nil {
				continue
			}
			rec := GroupLogRecord{LogKey: logKey(gf.g.key), GroupKey: gf.g.key, Firing: mustJSON(fpList(gf.newLog.firing)),
				Resolved: mustJSON(fpList(gf.newLog.resolved)), NotifiedAt: utc(gf.newLog.at)}
			if err := tx.Clauses(clause.OnConflict{UpdateAll: true}).Create(&rec).Error; err != nil {
				return err
			}
		}
		return nil
	})
}

func anyNewLog(b *flushBatch) bool {
	for _, gf := range b.groups {
		if gf.newLog != nil {
			return true
		}
	}
	return false
}

// idempotencyKey is the key of a notification's delivery through a channel:
// hex of SHA-256 over the notification's random id and the channel's name.
func idempotencyKey(notificationUID, channel string) string {
	s := sha256.Sum256([]byte(notificationUID + "\x00" + channel))
	return hex.EncodeToString(s[:16])
}
