package jobrunner

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/jobrunner/connectors"
	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
)

// ErrCheckpointLockLost: this job master no longer holds the lock of its
// HDFS checkpoint directory (another job master took it over, or it could not
// renew it in time), so its checkpoint storage refuses to write.
var ErrCheckpointLockLost = errors.New("jobrunner: checkpoint directory lock lost")

// The lock of an HDFS checkpoint directory.
//
// A local checkpoint directory is locked with flock (lockDir), which the
// kernel releases when the process dies. HDFS has no such lock, and relying
// on YARN alone is not enough: YARN runs one attempt of an application at a
// time, but nothing stops a second application of the same job (a
// resubmission while the first still runs, or two daemons) from writing the
// same directory, and the first would prune the second's checkpoints. So
// the job master holds a lease:
//
//   - <dir>/.lock is created exclusively (the namenode refuses to create an
//     existing file, so of several job masters exactly one succeeds) and
//     holds the holder's identity as JSON: job id, attempt, YARN container,
//     host, pid and a random token.
//   - The holder renews it every leaseTiming.renew by writing a new copy and
//     renaming it over .lock; the renewal also checks that the token in .lock
//     is still its own.
//   - Times are compared on the namenode's clock only (the modification time
//     of .lock against that of a probe file just written), never against the
//     local clock, so clock skew between hosts does not matter.
//   - A contender finding .lock takes it over when it was not renewed for
//     leaseTiming.ttl (its holder died without releasing it), or at once when
//     the holder is an earlier attempt of the contender's own YARN
//     application (YARN starts attempt n+1 only after attempt n's container
//     has ended). Otherwise it waits, once, for the lease to expire, and
//     gives up with ErrAlreadyRunning if the holder renews it meanwhile.
//   - A holder that finds .lock gone or taken over, or that could not renew
//     for ttl - 2*renew, declares the lock lost: its storage then refuses
//     every write (ErrCheckpointLockLost), so it neither completes a
//     checkpoint (and commits its sinks) nor prunes the new holder's
//     checkpoints.
//
// This is a lease, not a consensus protocol: a holder that stalls longer
// than ttl while it writes can still finish that one write. YARN running one
// attempt at a time remains the first line of defence.

// leaseTiming configures the lease of an HDFS checkpoint directory lock.
type leaseTiming struct {
	ttl   time.Duration // a lock not renewed for this long is abandoned
	renew time.Duration // how often the holder renews it
}

var defaultLeaseTiming = leaseTiming{ttl: 60 * time.Second, renew: 10 * time.Second}

// lockOwner identifies a job master in a lock file.
type lockOwner struct {
	Token     string `json:"token"` // random, one per acquisition
	JobID     string `json:"jobId"`
	Attempt   int    `json:"attempt"`
	Container string `json:"container,omitempty"` // CONTAINER_ID under YARN
	Host      string `json:"host"`
	PID       int    `json:"pid"`
	Acquired  string `json:"acquired"`          // holder's clock, for people
	Renewals  int64  `json:"renewals"`          // grows with every renewal
	Renewed   string `json:"renewed,omitempty"` // holder's clock, for people
}

// newLockOwner describes this process as the job master of jobID.
func newLockOwner(jobID string, attempt int) lockOwner {
	host, _ := os.Hostname()
	var tok [8]byte
	_, _ = rand.Read(tok[:]) // never fails (crypto/rand, Go 1.24+)
	return lockOwner{
		Token: hex.EncodeToString(tok[:]), JobID: jobID, Attempt: attempt,
		Container: os.Getenv("CONTAINER_ID"), Host: host, PID: os.Getpid(),
	}
}

func (o lockOwner) String() string {
	if o.Token == "" {
		return "an unknown job master"
	}
	s := fmt.Sprintf("job master of job %s attempt %d (pid %d on %s", o.JobID, o.Attempt, o.PID, o.Host)
	if o.Container != "" {
		s += ", container " + o.Container
	}
	return s + ")"
}

// lockState is a lock file as a contender sees it.
type lockState struct {
	raw    []byte
	holder lockOwner // zero when raw does not parse
	mtime  time.Time // namenode clock
}

type leaseAction int

const (
	leaseWait     leaseAction = iota // wait, then look again
	leaseTakeOver                    // the holder is gone: take the lock over
	leaseBusy                        // the holder is alive: give up
)

// decideLease decides what a contender (me) does about a lock it found
// (cur), given what it saw before it last waited (prev, or nil) and the time
// now on the same clock as cur.mtime.
func decideLease(prev *lockState, cur lockState, now time.Time, me lockOwner, t leaseTiming) (leaseAction, time.Duration) {
	if prev != nil && (!cur.mtime.Equal(prev.mtime) || !bytes.Equal(cur.raw, prev.raw)) {
		return leaseBusy, 0 // renewed while we waited
	}
	if earlierAttempt(cur.holder.Container, me.Container) {
		return leaseTakeOver, 0
	}
	age := now.Sub(cur.mtime)
	if age >= t.ttl {
		return leaseTakeOver, 0
	}
	return leaseWait, min(t.ttl-age, t.ttl) + t.renew/2
}

// earlierAttempt reports whether container holder belongs to an earlier
// attempt of the YARN application of container me.
func earlierAttempt(holder, me string) bool {
	if holder == "" || me == "" {
		return false
	}
	h, err1 := hadoopproto.ParseContainerID(holder)
	m, err2 := hadoopproto.ParseContainerID(me)
	if err1 != nil || err2 != nil {
		return false
	}
	ha, ma := h.GetAppAttemptId(), m.GetAppAttemptId()
	return ha.GetApplicationId().GetClusterTimestamp() == ma.GetApplicationId().GetClusterTimestamp() &&
		ha.GetApplicationId().GetId() == ma.GetApplicationId().GetId() &&
		ha.GetAttemptId() < ma.GetAttemptId()
}

// leaseLock is a held lease on a lock file; see above.
type leaseLock struct {
	fsys   connectors.FS
	path   string
	owner  lockOwner
	timing leaseTiming
	log    *logrus.Entry
	onLost func(error)

	mu   sync.Mutex // serializes renew and release
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// maxLockRounds bounds how often acquireLease looks at a lock file that keeps
// changing under it.
const maxLockRounds = 10

// acquireLease takes the lock file p on fsys for owner, waiting (with sleep)
// at most about one lease for an abandoned lock to expire. onLost is called
// once, from the renewing goroutine, if the lock is lost later.
func acquireLease(ctx context.Context, fsys connectors.FS, p string, owner lockOwner, timing leaseTiming,
	sleep func(context.Context, time.Duration) error, log *logrus.Entry, onLost func(error)) (*leaseLock, error) {
	if timing.renew <= 0 || timing.ttl <= 2*timing.renew {
		return nil, fmt.Errorf("jobrunner: lock %s: lease ttl %s must exceed twice the renewal interval %s", fsys.URL(p), timing.ttl, timing.renew)
	}
	owner.Acquired = time.Now().Format(time.RFC3339Nano)
	l := &leaseLock{fsys: fsys, path: p, owner: owner, timing: timing, log: log, onLost: onLost,
		stop: make(chan struct{}), done: make(chan struct{})}
	var prev *lockState
	for range maxLockRounds {
		err := l.create(p)
		if err == nil {
			go l.renewLoop()
			return l, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("jobrunner: lock %s: %w", fsys.URL(p), err)
		}
		cur, err := l.observe(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, err
		}
		now, err := l.fsNow()
		if err != nil {
			return nil, err
		}
		act, wait := decideLease(prev, *cur, now, owner, timing)
		switch act {
		case leaseBusy:
			return nil, fmt.Errorf("%w: %s is held by %s, which renewed it just now", ErrAlreadyRunning, fsys.URL(p), cur.holder)
		case leaseTakeOver:
			err := l.takeOver(cur)
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist) {
				prev = nil
				continue // another contender moved first; look again
			}
			if err != nil {
				return nil, err
			}
			log.WithFields(logrus.Fields{"lock": fsys.URL(p), "previousHolder": cur.holder.String(), "lastRenewed": cur.mtime}).
				Warn("took over the checkpoint directory lock of a job master that is gone")
			go l.renewLoop()
			return l, nil
		case leaseWait:
			log.WithFields(logrus.Fields{"lock": fsys.URL(p), "holder": cur.holder.String(), "wait": wait.Round(time.Millisecond)}).
				Info("checkpoint directory is locked; waiting to see whether its holder is alive")
			if err := sleep(ctx, wait); err != nil {
				return nil, fmt.Errorf("jobrunner: lock %s: %w", fsys.URL(p), err)
			}
			prev = cur
		}
	}
	return nil, fmt.Errorf("%w: %s keeps changing hands; gave up after %d tries", ErrAlreadyRunning, fsys.URL(p), maxLockRounds)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// create writes the owner into p, which must not exist.
func (l *leaseLock) create(p string) error {
	w, err := l.fsys.CreateExclusive(p)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(l.owner)
	_, err = w.Write(append(b, '\n'))
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = l.fsys.Remove(p)
		return fmt.Errorf("write %s: %w", l.fsys.URL(p), err)
	}
	return nil
}

// observe reads the lock file p.
func (l *leaseLock) observe(p string) (*lockState, error) {
	fi, err := l.fsys.Stat(p)
	if err != nil {
		return nil, wrapNotExist(fmt.Errorf("jobrunner: lock %s: %w", l.fsys.URL(p), err), err)
	}
	raw, err := readFile(l.fsys, p, 1<<16)
	if err != nil {
		return nil, wrapNotExist(fmt.Errorf("jobrunner: lock %s: %w", l.fsys.URL(p), err), err)
	}
	st := &lockState{raw: raw, mtime: fi.ModTime()}
	_ = json.Unmarshal(raw, &st.holder) // an unreadable lock has an unknown holder
	return st, nil
}

// wrapNotExist keeps fs.ErrNotExist reachable from err when cause is one.
func wrapNotExist(err, cause error) error {
	if errors.Is(cause, fs.ErrNotExist) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w (%w)", err, fs.ErrNotExist)
	}
	return err
}

// fsNow returns the file system's clock: the modification time of a probe
// file written next to the lock.
func (l *leaseLock) fsNow() (time.Time, error) {
	probe := l.path + ".probe-" + l.owner.Token
	w, err := l.fsys.Create(probe)
	if err == nil {
		err = w.Close()
	}
	var fi fs.FileInfo
	if err == nil {
		fi, err = l.fsys.Stat(probe)
	}
	_ = l.fsys.Remove(probe)
	if err != nil {
		return time.Time{}, fmt.Errorf("jobrunner: lock %s: read the file system's clock from %s: %w", l.fsys.URL(l.path), l.fsys.URL(probe), err)
	}
	return fi.ModTime(), nil
}

// takeOver moves the abandoned lock cur aside and creates its own. If what
// it moved aside is not cur (the lock changed hands in between), it gives up
// with ErrAlreadyRunning; the holder it displaced then finds its lock gone
// at its next renewal and stops writing.
func (l *leaseLock) takeOver(cur *lockState) error {
	aside := l.path + ".stale-" + l.owner.Token
	if err := l.fsys.Rename(l.path, aside); err != nil {
		return wrapNotExist(fmt.Errorf("jobrunner: lock %s: move the abandoned lock aside: %w", l.fsys.URL(l.path), err), err)
	}
	moved, err := l.observe(aside)
	if rerr := l.fsys.Remove(aside); rerr != nil {
		l.log.WithError(rerr).WithField("path", l.fsys.URL(aside)).Warn("cannot remove an abandoned lock file")
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(moved.raw, cur.raw) {
		return fmt.Errorf("%w: %s changed hands while this job master took it over (now held by %s)", ErrAlreadyRunning, l.fsys.URL(l.path), moved.holder)
	}
	return l.create(l.path)
}

// renew rewrites the lock file if it is still this owner's; it returns
// ErrCheckpointLockLost if it is not.
func (l *leaseLock) renew() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur, err := l.observe(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s was removed", ErrCheckpointLockLost, l.fsys.URL(l.path))
	}
	if err != nil {
		return err
	}
	if cur.holder.Token != l.owner.Token {
		return fmt.Errorf("%w: %s is now held by %s", ErrCheckpointLockLost, l.fsys.URL(l.path), cur.holder)
	}
	l.owner.Renewals++
	l.owner.Renewed = time.Now().Format(time.RFC3339Nano)
	b, _ := json.Marshal(l.owner)
	tmp := l.path + ".renew-" + l.owner.Token
	if err := fsWriteFile(l.fsys, tmp, append(b, '\n')); err != nil {
		_ = l.fsys.Remove(tmp)
		return fmt.Errorf("jobrunner: renew lock: %w", err)
	}
	if err := l.fsys.Rename(tmp, l.path); err != nil {
		_ = l.fsys.Remove(tmp)
		return fmt.Errorf("jobrunner: renew lock %s: %w", l.fsys.URL(l.path), err)
	}
	return nil
}

func (l *leaseLock) renewLoop() {
	defer close(l.done)
	t := time.NewTicker(l.timing.renew)
	defer t.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		err := l.renew()
		switch {
		case err == nil:
			lastOK = time.Now()
			continue
		case errors.Is(err, ErrCheckpointLockLost):
		default:
			// Declare the lock lost well before a contender may take it.
			since := time.Since(lastOK)
			if since <= l.timing.ttl-2*l.timing.renew {
				l.log.WithError(err).WithField("lock", l.fsys.URL(l.path)).Warn("cannot renew the checkpoint directory lock; retrying")
				continue
			}
			err = fmt.Errorf("%w: %s not renewed for %s: %w", ErrCheckpointLockLost, l.fsys.URL(l.path), since.Round(time.Second), err)
		}
		l.log.WithError(err).Error("lost the checkpoint directory lock; this job master writes no more checkpoints")
		l.onLost(err)
		return
	}
}

// release stops renewing and removes the lock file if it is still this
// owner's.
func (l *leaseLock) release() {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		l.mu.Lock()
		defer l.mu.Unlock()
		cur, err := l.observe(l.path)
		if err != nil || cur.holder.Token != l.owner.Token {
			return
		}
		if err := l.fsys.Remove(l.path); err != nil {
			l.log.WithError(err).WithField("lock", l.fsys.URL(l.path)).Warn("cannot remove the checkpoint directory lock; the next job master takes it over once its lease expires")
		}
	})
}
