package supportlayer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Lease is the row that makes one daemon the owner of a database: the
// watcher deploys and restarts jobs from the database, so two daemons on
// one database would each start the same jobs. The holder renews the lease
// well within its TTL; another daemon may take it only once it expired, or
// at once when it is held by a process of the same host that no longer
// exists (a crashed daemon restarting).
type Lease struct {
	Name      string `gorm:"primaryKey;size:64"`
	Holder    string `gorm:"size:64"` // unique per daemon process
	Host      string `gorm:"size:255"`
	PID       int    `gorm:"column:pid"`
	Listen    string `gorm:"size:255"`
	ExpiresAt time.Time
	RenewedAt time.Time
}

// TableName keeps the table's name stable whatever gorm's naming does.
func (Lease) TableName() string { return "daemon_leases" }

// daemonLease is the name of the lease of the daemon's database.
const daemonLease = "daemon"

// ErrLeaseHeld reports a lease held by another daemon.
var ErrLeaseHeld = errors.New("held by another daemon")

// String says who holds l, for people.
func (l Lease) String() string {
	s := fmt.Sprintf("host %s, pid %d", l.Host, l.PID)
	if l.Listen != "" {
		s += ", listening on " + l.Listen
	}
	return s + ", until " + l.ExpiresAt.UTC().Format(time.RFC3339)
}

// AcquireLease takes lease want.Name for want.Holder until want.ExpiresAt if
// it is free, expired, held by want.Holder already, or held by a dead
// process of this host; otherwise it returns the holder's lease and an
// error wrapping ErrLeaseHeld.
func (s *Store) AcquireLease(ctx context.Context, want Lease, now time.Time) (Lease, error) {
	var got Lease
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Insert the lease if nobody ever took it.
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&want).Error; err != nil {
			return err
		}
		if err := tx.Where("name = ?", want.Name).Take(&got).Error; err != nil {
			return err
		}
		if got.Holder != want.Holder && now.Before(got.ExpiresAt) && !deadLocalHolder(got) {
			return fmt.Errorf("lease %q: %w (%s)", want.Name, ErrLeaseHeld, got)
		}
		// Conditional on the holder just read: of two daemons taking an
		// expired lease at once, one updates the row and the other finds
		// it changed.
		res := tx.Model(&Lease{}).Where("name = ? AND holder = ?", want.Name, got.Holder).Updates(map[string]any{
			"holder": want.Holder, "host": want.Host, "pid": want.PID, "listen": want.Listen,
			"expires_at": want.ExpiresAt, "renewed_at": want.RenewedAt,
		})
		if res.Error != nil {
			return res.Error
		}
		// MySQL counts only changed rows: a holder taking its own lease
		// again with the same values changes none.
		if res.RowsAffected != 1 && got.Holder != want.Holder {
			return fmt.Errorf("lease %q: %w (taken meanwhile)", want.Name, ErrLeaseHeld)
		}
		got = want
		return nil
	})
	return got, err
}

// RenewLease moves the expiry of a lease l.Holder holds. It fails with
// ErrLeaseHeld if another daemon took the lease.
func (s *Store) RenewLease(ctx context.Context, l Lease) error {
	res := s.db.WithContext(ctx).Model(&Lease{}).Where("name = ? AND holder = ?", l.Name, l.Holder).
		Updates(map[string]any{"expires_at": l.ExpiresAt, "renewed_at": l.RenewedAt})
	if res.Error != nil {
		return fmt.Errorf("renew lease %q: %w", l.Name, res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	var cur Lease
	if err := s.db.WithContext(ctx).Where("name = ?", l.Name).Take(&cur).Error; err != nil {
		return fmt.Errorf("lease %q: %w", l.Name, ErrLeaseHeld)
	}
	if cur.Holder == l.Holder {
		return nil // MySQL: unchanged values count as no row
	}
	return fmt.Errorf("lease %q: %w (%s)", l.Name, ErrLeaseHeld, cur)
}

// ReleaseLease ends a lease l.Holder holds, so that the next daemon need
// not wait for it to expire.
func (s *Store) ReleaseLease(ctx context.Context, l Lease, now time.Time) error {
	return s.db.WithContext(ctx).Model(&Lease{}).Where("name = ? AND holder = ?", l.Name, l.Holder).
		Update("expires_at", now).Error
}

// deadLocalHolder reports whether l's holder was a process of this host
// that no longer runs.
func deadLocalHolder(l Lease) bool {
	host, err := os.Hostname()
	if err != nil || l.Host != host || l.PID <= 0 {
		return false
	}
	if l.PID == os.Getpid() {
		return false // this process: another daemon in it, still alive
	}
	return errors.Is(syscall.Kill(l.PID, 0), syscall.ESRCH)
}
