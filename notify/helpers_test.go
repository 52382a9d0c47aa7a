package notify

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/sirupsen/logrus"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// openSQLite opens a database file the way the daemon does (WAL, a busy
// timeout, one connection) and creates the notifier's tables.
func openSQLite(t testing.TB, path string) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(sqlite.Open(path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)"),
		&gorm.Config{Logger: logger.Discard, NowFunc: func() time.Time { return time.Now().UTC() }})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1)
	if err := Migrate(db); err != nil {
		t.Fatal(err)
	}
	return db
}

func closeDB(t testing.TB, db *gorm.DB) {
	if sqlDB, err := db.DB(); err == nil {
		sqlDB.Close()
	}
}

// backend opens the same database again and again (for restarts).
type backend struct {
	name string
	open func(t testing.TB) *gorm.DB
}

// backends are the databases the durability tests run against: SQLite
// always, PostgreSQL and MySQL when a DSN for a scratch database is given
// (as for the store conformance suite in supportlayer).
func backends(t *testing.T) []backend {
	dir := t.TempDir()
	bs := []backend{{"sqlite", func(t testing.TB) *gorm.DB { return openSQLite(t, filepath.Join(dir, "t.db")) }}}
	for _, d := range []struct{ name, env string }{{"postgres", "TIDEWATCH_TEST_POSTGRES_DSN"}, {"mysql", "TIDEWATCH_TEST_MYSQL_DSN"}} {
		dsn := os.Getenv(d.env)
		name, env := d.name, d.env
		cleared := false
		bs = append(bs, backend{name, func(t testing.TB) *gorm.DB {
			if dsn == "" {
				t.Skipf("%s not set", env)
			}
			dial := postgres.Open(dsn)
			if name == "mysql" {
				dial = mysql.Open(dsn)
			}
			db, err := gorm.Open(dial, &gorm.Config{Logger: logger.Discard, NowFunc: func() time.Time { return time.Now().UTC() }})
			if err != nil {
				t.Fatal(err)
			}
			if err := Migrate(db); err != nil {
				t.Fatal(err)
			}
			if !cleared { // a scratch database: start from empty tables, once per test
				for _, m := range Models() {
					if err := db.Session(&gorm.Session{AllowGlobalUpdate: true}).Delete(m).Error; err != nil {
						t.Fatal(err)
					}
				}
				cleared = true
			}
			return db
		}})
	}
	return bs
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLog(out *syncBuffer) *logrus.Entry {
	l := logrus.New()
	l.SetLevel(logrus.DebugLevel)
	if out != nil {
		l.SetOutput(out)
	} else {
		l.SetOutput(&syncBuffer{})
	}
	return logrus.NewEntry(l).WithField("component", "notify")
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startNotifier(t testing.TB, db *gorm.DB, cfg Config, opts Options) *Notifier {
	t.Helper()
	n, err := New(db, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return n
}

func stopNotifier(t testing.TB, n *Notifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func dur(d time.Duration) *time.Duration { return &d }

func boolp(b bool) *bool { return &b }
