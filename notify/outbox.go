package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"gorm.io/gorm"

	"github.com/tidewatch/tidewatch/notify/alert"
	"github.com/tidewatch/tidewatch/notify/channel"
)

// The outbox delivers the rows of notify_deliveries at least once.
//
// A row is written in the same transaction as its notification and stays
// pending until a channel accepts it (delivered) or the notifier gives up
// (failed: an error a retry cannot fix, max_attempts, or max_age). One loop
// picks due rows in order of next_attempt_at and hands them to the workers;
// a worker records the attempt as "sending" before it sends and its outcome
// after, in one transaction with the row's new state. A retry waits
// min_backoff doubled per attempt, capped at max_backoff, half of it random
// (so that rows failing together do not retry together), or longer if the
// remote asked for it.
//
// Nothing about a row in flight is held outside the database but the fact
// that a worker has it. A daemon that stops cancels its sends and records
// them as interrupted, due at once; a daemon that dies leaves them pending
// with a "sending" attempt, which the next start marks interrupted. Either
// way the row is sent again: a receiver may see a notification twice, with
// the same idempotency key, and never not at all.
type outbox struct {
	db       *gorm.DB
	cfg      Outbox
	channels map[string]*channelEntry
	now      func() time.Time
	log      *logrus.Entry
	m        *metrics

	wake    chan struct{}
	work    chan job
	results chan result

	mu       sync.Mutex
	inflight map[uint64]bool
	reserved map[uint64]bool // rows postponed by a rate limit, whose slot is taken
	rnd      *rand.Rand
}

func newOutbox(db *gorm.DB, cfg Outbox, channels map[string]*channelEntry, now func() time.Time, log *logrus.Entry, m *metrics) *outbox {
	return &outbox{db: db, cfg: cfg, channels: channels, now: now, log: log, m: m,
		wake: make(chan struct{}, 1), work: make(chan job, cfg.Workers), results: make(chan result, cfg.Workers),
		inflight: map[uint64]bool{}, reserved: map[uint64]bool{},
		rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0x7469646577617463))}
}

// poke asks the loop to look for due rows now.
func (o *outbox) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// recoverInterrupted marks the attempts a dead daemon left "sending".
func (o *outbox) recoverInterrupted(ctx context.Context) (int64, error) {
	now := utc(o.now())
	res := o.db.WithContext(ctx).Model(&AttemptRecord{}).Where("outcome = ?", OutcomeSending).
		Updates(map[string]any{"outcome": OutcomeInterrupted, "finished_at": now,
			"error": "the daemon stopped during this attempt; sent again"})
	return res.RowsAffected, res.Error
}

// idlePoll bounds how long the loop sleeps without looking at the table.
const idlePoll = 5 * time.Second

// job is a row handed to a worker, with its attempt record.
type job struct {
	r  *DeliveryRecord
	ar *AttemptRecord
}

// result is the outcome of one attempt, for the recorder.
type result struct {
	job
	outcome string
	errText string
	at      time.Time // when due again, for retries
	done    []string
}

// run is the dispatch loop; it returns when ctx ends, after its workers and
// the recorder have.
func (o *outbox) run(ctx context.Context) {
	var workers sync.WaitGroup
	for i := 0; i < o.cfg.Workers; i++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-o.work:
					o.results <- o.deliver(ctx, j)
				}
			}
		}()
	}
	recorded := make(chan struct{})
	go func() { defer close(recorded); o.record(context.WithoutCancel(ctx)) }()
	defer func() {
		workers.Wait()
		// Rows handed out but not started are recorded as interrupted too.
		for {
			select {
			case j := <-o.work:
				o.results <- result{job: j, outcome: OutcomeInterrupted, errText: "not started before a stop; sent again"}
				continue
			default:
			}
			break
		}
		close(o.results) // the recorder writes what is left, then ends
		<-recorded
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := o.dispatch(ctx)
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
		case <-timer.C:
		}
	}
}

// dispatch hands due rows to free workers and returns how long to wait.
func (o *outbox) dispatch(ctx context.Context) time.Duration {
	o.mu.Lock()
	free := o.cfg.Workers - len(o.inflight)
	busy := make([]uint64, 0, len(o.inflight))
	for id := range o.inflight {
		busy = append(busy, id)
	}
	o.mu.Unlock()
	if ctx.Err() != nil {
		return idlePoll
	}
	if free <= 0 {
		return idlePoll // a worker that finishes pokes the loop
	}
	now := o.now()
	q := o.db.WithContext(ctx).Where("status = ? AND next_attempt_at <= ?", DeliveryPending, utc(now))
	if len(busy) > 0 {
		q = q.Where("id NOT IN ?", busy)
	}
	var rows []*DeliveryRecord
	if err := q.Order("next_attempt_at, id").Limit(free).Find(&rows).Error; err != nil {
		if ctx.Err() == nil {
			o.log.WithError(err).Warn("read the outbox")
		}
		return time.Second
	}
	var jobs []job
	var atts []*AttemptRecord
	for _, r := range rows {
		if o.hold(ctx, r, now) {
			continue
		}
		ar := &AttemptRecord{DeliveryID: r.ID, Attempt: r.Attempts + 1, StartedAt: utc(now), Outcome: OutcomeSending}
		jobs, atts = append(jobs, job{r, ar}), append(atts, ar)
	}
	// Each attempt is recorded as sending before it starts, all in one
	// statement: if the daemon dies now, the next one knows.
	if len(atts) > 0 {
		if err := o.db.WithContext(ctx).Create(&atts).Error; err != nil {
			if ctx.Err() == nil {
				o.log.WithError(err).Warn("record delivery attempts")
			}
			return time.Second
		}
	}
	o.mu.Lock()
	for _, j := range jobs {
		o.inflight[j.r.ID] = true
	}
	o.mu.Unlock()
	for _, j := range jobs {
		o.work <- j // buffered for every worker; never blocks
	}
	handed := len(jobs)
	switch {
	case len(rows) == free && handed < free:
		return 10 * time.Millisecond // some were held back: look for others soon
	case len(rows) == free:
		return idlePoll // every worker is busy; each pokes the loop when done
	}
	return o.untilNext(ctx, now)
}

// hold decides about a due row before it goes to a worker: rows of channels
// that are gone, and rows past max_age, fail; rows over their channel's rate
// limit are postponed to their slot. It returns true if the row does not go.
func (o *outbox) hold(ctx context.Context, r *DeliveryRecord, now time.Time) bool {
	ce := o.channels[r.Channel]
	if ce == nil {
		o.finishRow(ctx, r, OutcomeFailed, fmt.Sprintf("channel %s is not configured any more", r.Channel))
		return true
	}
	if now.Sub(r.CreatedAt) > o.cfg.MaxAge {
		o.finishRow(ctx, r, OutcomeFailed, fmt.Sprintf("not delivered within max_age (%s)", o.cfg.MaxAge))
		return true
	}
	if ce.limiter == nil {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.reserved[r.ID] {
		delete(o.reserved, r.ID)
		return false
	}
	at := ce.limiter.reserve(now)
	if !at.After(now) {
		return false
	}
	o.reserved[r.ID] = true
	o.m.rateLimited.WithLabelValues(r.Channel).Inc()
	if err := o.db.WithContext(ctx).Model(&DeliveryRecord{}).Where("id = ?", r.ID).
		Updates(map[string]any{"next_attempt_at": utc(at), "updated_at": utc(now)}).Error; err != nil && ctx.Err() == nil {
		o.log.WithError(err).Warn("postpone a rate-limited delivery")
	}
	return true
}

// untilNext is the wait until the earliest pending row, and refreshes the
// pending gauge on the way.
func (o *outbox) untilNext(ctx context.Context, now time.Time) time.Duration {
	var agg struct{ N int64 }
	if err := o.db.WithContext(ctx).Model(&DeliveryRecord{}).Where("status = ?", DeliveryPending).
		Select("COUNT(*) AS n").Scan(&agg).Error; err != nil {
		return time.Second
	}
	o.m.pending.Set(float64(agg.N))
	if agg.N == 0 {
		return idlePoll
	}
	// The earliest row is read as a row: MIN of a time column comes back as
	// text from SQLite.
	var next DeliveryRecord
	if err := o.db.WithContext(ctx).Where("status = ?", DeliveryPending).Order("next_attempt_at, id").
		Select("id, next_attempt_at").Limit(1).Find(&next).Error; err != nil || next.ID == 0 {
		return time.Second
	}
	d := next.NextAttemptAt.Sub(now)
	switch {
	case d < 0:
		// Due but held by a busy worker, or just postponed: poll gently.
		return 50 * time.Millisecond
	case d > idlePoll:
		return idlePoll
	}
	return d
}

// backoff is the wait before attempt n+1 after attempt n failed.
func (o *outbox) backoff(attempt int, after time.Duration) time.Duration {
	d := o.cfg.MaxBackoff
	if attempt < 32 {
		if s := o.cfg.MinBackoff << (attempt - 1); s > 0 && s < d {
			d = s
		}
	}
	o.mu.Lock()
	j := d/2 + time.Duration(o.rnd.Int64N(int64(d/2)+1))
	o.mu.Unlock()
	if after > j {
		j = after
	}
	return j
}

// deliver makes one attempt at one row and returns its outcome.
func (o *outbox) deliver(ctx context.Context, j job) result {
	r := j.r
	res := result{job: j}
	ce := o.channels[r.Channel]
	msg, err := o.message(context.WithoutCancel(ctx), r, ce, j.ar.Attempt)
	if err != nil {
		res.outcome, res.errText = OutcomeFailed, "notification unreadable: "+err.Error()
		return res
	}
	started := o.now()
	sctx, cancel := context.WithTimeout(ctx, o.cfg.SendTimeout)
	err = ce.ch.Send(sctx, msg)
	cancel()
	now := o.now()
	o.m.sendSeconds.WithLabelValues(ce.typ).Observe(now.Sub(started).Seconds())

	var pe *channel.PartialError
	if errors.As(err, &pe) {
		res.done = pe.Delivered
		err = pe.Err
		if err == nil {
			err = errors.New("partial delivery")
		}
	}
	switch {
	case err == nil:
		res.outcome = OutcomeDelivered
		return res
	case ctx.Err() != nil:
		// Stopping: whether the receiver got it is unknown; send it again
		// as soon as the notifier runs.
		res.outcome, res.errText = OutcomeInterrupted, "interrupted by a stop; sent again"
		return res
	}
	res.errText = channel.Scrub(err.Error(), ce.secrets...)
	retry, after := channel.Retryable(err)
	switch {
	case !retry:
		res.outcome = OutcomeFailed
	case o.cfg.MaxAttempts > 0 && j.ar.Attempt >= o.cfg.MaxAttempts:
		res.outcome = OutcomeFailed
		res.errText += fmt.Sprintf(" (gave up after %d attempts)", j.ar.Attempt)
	case now.Sub(r.CreatedAt) > o.cfg.MaxAge:
		res.outcome = OutcomeFailed
		res.errText += fmt.Sprintf(" (gave up after max_age %s)", o.cfg.MaxAge)
	default:
		res.outcome, res.at = OutcomeRetry, now.Add(o.backoff(j.ar.Attempt, after))
	}
	return res
}

// record writes the workers' results, as many as are waiting in one
// transaction, until the results channel is closed.
func (o *outbox) record(ctx context.Context) {
	for res := range o.results {
		batch := []result{res}
	drain:
		for len(batch) < 64 {
			select {
			case r, ok := <-o.results:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		err := o.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			for _, r := range batch {
				if err := o.writeOutcome(tx, r.r, r.ar, r.outcome, r.errText, r.at, r.done); err != nil {
					return err
				}
			}
			return nil
		})
		o.mu.Lock()
		for _, r := range batch {
			delete(o.inflight, r.r.ID)
		}
		o.mu.Unlock()
		o.poke()
		if err != nil {
			// The rows stay pending as they were: they are sent again.
			o.log.WithError(err).Warn("record delivery outcomes")
			continue
		}
		for _, r := range batch {
			o.logOutcome(r)
		}
	}
}

func (o *outbox) logOutcome(r result) {
	o.m.deliveries.WithLabelValues(r.r.Channel, r.outcome).Inc()
	log := o.log.WithFields(logrus.Fields{"channel": r.r.Channel, "delivery": r.r.ID, "attempt": r.ar.Attempt, "key": r.r.IdempotencyKey})
	switch r.outcome {
	case OutcomeDelivered:
		log.Debug("delivered")
	case OutcomeInterrupted:
		log.Info("delivery interrupted by a stop; it is sent again on start")
	case OutcomeRetry:
		log.WithField("error", r.errText).WithField("retry_at", r.at.Format(time.RFC3339Nano)).Warn("delivery failed; will retry")
	case OutcomeFailed:
		log.WithField("error", r.errText).Error("delivery failed; giving up")
	}
}

// message rebuilds the message of a row from its notification.
func (o *outbox) message(ctx context.Context, r *DeliveryRecord, ce *channelEntry, attempt int) (*alert.Message, error) {
	var n NotificationRecord
	if err := o.db.WithContext(ctx).Where("id = ?", r.NotificationID).First(&n).Error; err != nil {
		return nil, err
	}
	var m alert.Message
	if err := json.Unmarshal([]byte(n.Payload), &m); err != nil {
		return nil, err
	}
	m.IdempotencyKey, m.NotificationID, m.Attempt = r.IdempotencyKey, n.UID, attempt
	_ = json.Unmarshal([]byte(r.Done), &m.Done)
	if !ce.sendResolved {
		m.Alerts = m.Alerts.Firing()
	}
	return &m, nil
}

// writeOutcome records an attempt's outcome (ar nil: no attempt was made)
// and the row's new state. For OutcomeRetry, at is when the row is due again;
// an interrupted row is due at once.
func (o *outbox) writeOutcome(tx *gorm.DB, r *DeliveryRecord, ar *AttemptRecord, outcome, errText string, at time.Time, done []string) error {
	now := utc(o.now())
	errText = truncateText(errText, 2048)
	set := map[string]any{"updated_at": now, "last_error": errText}
	switch outcome {
	case OutcomeDelivered:
		set["status"], set["delivered_at"] = DeliveryDelivered, now
	case OutcomeFailed:
		set["status"] = DeliveryFailed
	case OutcomeRetry:
		set["next_attempt_at"] = utc(at)
	case OutcomeInterrupted:
		set["next_attempt_at"] = now
	}
	if ar != nil {
		set["attempts"] = ar.Attempt
		if err := tx.Model(&AttemptRecord{}).Where("id = ?", ar.ID).Updates(map[string]any{
			"outcome": outcome, "finished_at": now, "error": errText}).Error; err != nil {
			return err
		}
	}
	if len(done) > 0 {
		var prev []string
		_ = json.Unmarshal([]byte(r.Done), &prev)
		set["done"] = mustJSON(dedupSorted(append(prev, done...)))
	}
	return tx.Model(&DeliveryRecord{}).Where("id = ?", r.ID).Updates(set).Error
}

// finishRow settles a row without an attempt (a vanished channel, max_age).
func (o *outbox) finishRow(ctx context.Context, r *DeliveryRecord, outcome, errText string) {
	if err := o.writeOutcome(o.db.WithContext(ctx), r, nil, outcome, errText, time.Time{}, nil); err != nil {
		if ctx.Err() == nil {
			o.log.WithError(err).WithField("delivery", r.ID).Warn("record a delivery's outcome")
		}
		return
	}
	o.logOutcome(result{job: job{r: r, ar: &AttemptRecord{}}, outcome: outcome, errText: errText})
}

func truncateText(s string, n int) string {
	return channel.TruncateBytes(n, s)
}
