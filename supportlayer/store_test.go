package supportlayer

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"
)

// storeBackends are the databases the store suite runs against: SQLite always,
// PostgreSQL and MySQL when a DSN for a scratch database is given.
func storeBackends(t *testing.T) map[string]func(t *testing.T) *Store {
	b := map[string]func(t *testing.T) *Store{
		"sqlite": func(t *testing.T) *Store {
			s, err := OpenStore("sqlite", filepath.Join(t.TempDir(), "t.db"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	for driver, env := range map[string]string{"postgres": "TIDEWATCH_TEST_POSTGRES_DSN", "mysql": "TIDEWATCH_TEST_MYSQL_DSN"} {
		dsn := os.Getenv(env)
		driver := driver
		b[driver] = func(t *testing.T) *Store {
			if dsn == "" {
				t.Skipf("%s not set", env)
			}
			s, err := OpenStore(driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			// A scratch database: start from empty tables.
			for _, m := range []any{&Event{}, &Deployment{}, &Job{}, &Lease{}} {
				if err := s.db.Session(&gorm.Session{AllowGlobalUpdate: true}).Delete(m).Error; err != nil {
					t.Fatal(err)
				}
			}
			return s
		}
	}
	return b
}

func TestStore(t *testing.T) {
	for name, open := range storeBackends(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			testStore(t, s)
		})
	}
}

func testStore(t *testing.T, s *Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	if v, err := s.SchemaVersion(); err != nil || v != len(migrations) {
		t.Fatalf("schema version %d, %v; want %d", v, err, len(migrations))
	}
	// Migrations are applied once: running them again changes nothing.
	if err := s.migrate(); err != nil {
		t.Fatal(err)
	}

	j := &Job{ID: "0123456789abcdef0123456789abcdef", Name: "a", Spec: "name: a\n", DesiredState: DesiredRunning, State: StateSubmitted, CreatedAt: now}
	if err := s.CreateJob(ctx, j, Event{Time: now, Level: "INFO", Type: "JOB_SUBMITTED"}); err != nil {
		t.Fatal(err)
	}
	dup := &Job{ID: "1123456789abcdef0123456789abcdef", Name: "a", State: StateSubmitted, CreatedAt: now}
	if err := s.CreateJob(ctx, dup, Event{Time: now}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second unfinished job named a: %v", err)
	}
	if _, err := s.Job(ctx, dup.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the refused job was stored: %v", err)
	}

	for _, id := range []string{j.ID, "01234567", "0123"} {
		got, err := s.Job(ctx, id)
		if err != nil || got.ID != j.ID || got.Spec != j.Spec {
			t.Fatalf("Job(%q) = %+v, %v", id, got, err)
		}
	}
	if _, err := s.Job(ctx, "012"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a 3-character prefix must not match: %v", err)
	}
	if _, err := s.Job(ctx, "01%"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LIKE wildcards must not match: %v", err)
	}
	other := &Job{ID: "0123ffffffffffffffffffffffffffff", Name: "b", State: StateSubmitted, CreatedAt: now.Add(time.Second)}
	if err := s.CreateJob(ctx, other, Event{Time: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Job(ctx, "0123"); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("ambiguous prefix: %v", err)
	}

	// One active deployment per job, attempts numbered 1, 2, ...
	d1 := &Deployment{JobID: j.ID, Deployer: "local", Reason: ReasonSubmit, StartedAt: now}
	if err := s.BeginDeployment(ctx, d1); err != nil || d1.Attempt != 1 || !d1.Active {
		t.Fatalf("first deployment %+v, %v", d1, err)
	}
	if err := s.BeginDeployment(ctx, &Deployment{JobID: j.ID, StartedAt: now}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second active deployment: %v", err)
	}
	d1.Active, d1.PID = false, 42
	if err := s.SaveDeployment(ctx, d1); err != nil {
		t.Fatal(err)
	}
	d2 := &Deployment{JobID: j.ID, Deployer: "local", Reason: ReasonRestart, StartedAt: now.Add(time.Minute)}
	if err := s.BeginDeployment(ctx, d2); err != nil || d2.Attempt != 2 {
		t.Fatalf("second deployment %+v, %v", d2, err)
	}
	if act, err := s.ActiveDeployment(ctx, j.ID); err != nil || act.ID != d2.ID {
		t.Fatalf("active = %+v, %v", act, err)
	}
	if n, err := s.RecentRestarts(ctx, j.ID, now); err != nil || n != 1 {
		t.Fatalf("recent restarts = %d, %v", n, err)
	}
	if n, _ := s.RecentRestarts(ctx, j.ID, now.Add(2*time.Minute)); n != 0 {
		t.Fatalf("restarts outside the window counted: %d", n)
	}
	if ds, err := s.Deployments(ctx, j.ID); err != nil || len(ds) != 2 || ds[0].Attempt != 2 || ds[1].PID != 42 {
		t.Fatalf("deployments = %+v, %v", ds, err)
	}

	j.State = StateRunning
	if err := s.SaveJob(ctx, j, Event{Time: now, Level: "INFO", Type: "JOB_RUNNING"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Jobs(ctx, []string{StateRunning}); len(got) != 1 || got[0].ID != j.ID {
		t.Fatalf("running jobs = %+v", got)
	}
	if counts, err := s.CountJobsByState(ctx); err != nil || counts[StateRunning] != 1 || counts[StateSubmitted] != 1 {
		t.Fatalf("counts = %v, %v", counts, err)
	}
	if evs, err := s.Events(ctx, j.ID, 10); err != nil || len(evs) != 2 || evs[0].Type != "JOB_RUNNING" {
		t.Fatalf("events = %+v, %v", evs, err)
	}

	// Desired state changes only for unfinished jobs.
	if _, err := s.UpdateDesired(ctx, j.ID, DesiredStopped, Event{Time: now}); err != nil {
		t.Fatal(err)
	}
	j.State = StateStopped
	s.SaveJob(ctx, j)
	if _, err := s.UpdateDesired(ctx, j.ID, DesiredCanceled, Event{Time: now}); !errors.Is(err, ErrConflict) {
		t.Fatalf("desired change of a stopped job: %v", err)
	}
	// With the first job ended, its name is free again.
	if err := s.CreateJob(ctx, &Job{ID: "2123456789abcdef0123456789abcdef", Name: "a", State: StateSubmitted, CreatedAt: now}, Event{Time: now}); err != nil {
		t.Fatalf("reuse of an ended job's name: %v", err)
	}
}

func TestLease(t *testing.T) {
	for name, open := range storeBackends(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			testLease(t, s)
		})
	}
}

func testLease(t *testing.T, s *Store) {
	ctx := context.Background()
	host, _ := os.Hostname()
	now := time.Now().UTC().Truncate(time.Second)
	lease := func(holder string, pid int, at time.Time) Lease {
		return Lease{Name: daemonLease, Holder: holder, Host: "elsewhere", PID: pid, Listen: "x:1", ExpiresAt: at.Add(30 * time.Second), RenewedAt: at}
	}
	a, b := lease("a", 1, now), lease("b", 2, now)
	if got, err := s.AcquireLease(ctx, a, now); err != nil || got.Holder != "a" {
		t.Fatalf("first acquire: %+v, %v", got, err)
	}
	if got, err := s.AcquireLease(ctx, a, now); err != nil || got.Holder != "a" {
		t.Fatalf("the holder acquires again: %+v, %v", got, err)
	}
	got, err := s.AcquireLease(ctx, b, now.Add(10*time.Second))
	if !errors.Is(err, ErrLeaseHeld) || got.Holder != "a" || got.Host != "elsewhere" || !strings.Contains(err.Error(), "host elsewhere, pid 1") {
		t.Fatalf("acquire of a held lease: %+v, %v", got, err)
	}
	if err := s.RenewLease(ctx, lease("b", 2, now.Add(10*time.Second))); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("renew by a non-holder: %v", err)
	}
	if err := s.RenewLease(ctx, lease("a", 1, now.Add(20*time.Second))); err != nil {
		t.Fatal(err)
	}
	// Renewed until now+50s: still held at +40s, free at +50s.
	if _, err := s.AcquireLease(ctx, lease("b", 2, now.Add(40*time.Second)), now.Add(40*time.Second)); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("acquire before the renewed expiry: %v", err)
	}
	if got, err := s.AcquireLease(ctx, lease("b", 2, now.Add(50*time.Second)), now.Add(50*time.Second)); err != nil || got.Holder != "b" {
		t.Fatalf("acquire of an expired lease: %+v, %v", got, err)
	}
	if err := s.RenewLease(ctx, lease("a", 1, now.Add(51*time.Second))); !errors.Is(err, ErrLeaseHeld) || !strings.Contains(err.Error(), "pid 2") {
		t.Fatalf("renew of a lease taken over: %v", err)
	}
	// Released: free at once.
	if err := s.ReleaseLease(ctx, lease("b", 2, now), now.Add(52*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.AcquireLease(ctx, lease("a", 1, now.Add(53*time.Second)), now.Add(53*time.Second)); err != nil || got.Holder != "a" {
		t.Fatalf("acquire of a released lease: %+v, %v", got, err)
	}
	// Held by a process of this host that has exited: free at once.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := lease("a", cmd.Process.Pid, now.Add(54*time.Second))
	dead.Host = host
	if err := s.RenewLease(ctx, dead); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Model(&Lease{}).Where("name = ?", daemonLease).Updates(map[string]any{"host": host, "pid": cmd.Process.Pid}).Error; err != nil {
		t.Fatal(err)
	}
	if got, err := s.AcquireLease(ctx, lease("c", 3, now.Add(55*time.Second)), now.Add(55*time.Second)); err != nil || got.Holder != "c" {
		t.Fatalf("acquire of a lease whose holder died: %+v, %v", got, err)
	}
}
