package supportlayer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/tidewatch/tidewatch/notify"
)

// Store errors.
var (
	ErrNotFound  = errors.New("supportlayer: not found")
	ErrAmbiguous = errors.New("supportlayer: ambiguous id prefix")
	ErrConflict  = errors.New("supportlayer: conflict")
)

// Job is a submitted job and what the daemon wants of it.
type Job struct {
	ID           string `gorm:"primaryKey;size:32"`
	Name         string `gorm:"size:64;index"`
	Spec         string `gorm:"type:text"`
	DesiredState string `gorm:"size:16"`
	State        string `gorm:"size:16;index"`
	Message      string `gorm:"size:1024"`
	// Restarts counts the restarts the watcher made after a deployment died.
	Restarts int
	// NextRestartAt is when a RESTARTING job is deployed again, and
	// RestartReason the reason its next deployment records.
	NextRestartAt *time.Time
	RestartReason string `gorm:"size:16"`
	// RestartRequested is set by a user's restart of a running job and
	// cleared when the watcher has ended the deployment.
	RestartRequested bool
	// StopRequestedAt is when a graceful stop or cancel was asked of the job master.
	StopRequestedAt *time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Deployment is one attempt at running a job: one process or one YARN application.
type Deployment struct {
	ID            uint   `gorm:"primaryKey"`
	JobID         string `gorm:"size:32;uniqueIndex:idx_job_attempt"`
	Attempt       int    `gorm:"uniqueIndex:idx_job_attempt"`
	Deployer      string `gorm:"size:16"`
	PID           int
	ApplicationID string `gorm:"size:64"`
	Endpoint      string `gorm:"size:256"`
	WorkDir       string `gorm:"size:1024"`
	LogPath       string `gorm:"size:1024"`
	Restore       string `gorm:"size:1024"`
	Reason        string `gorm:"size:32"`
	Savepoint     string `gorm:"size:1024"`
	// Active marks the deployment the job is running on; at most one per job.
	Active      bool   `gorm:"index"`
	State       string `gorm:"size:16"`
	FinalState  string `gorm:"size:16"`
	Diagnostics string `gorm:"size:2048"`
	StartedAt   time.Time
	EndedAt     *time.Time
}

// Event is one thing that happened to a job, for people to read.
type Event struct {
	ID           uint      `gorm:"primaryKey"`
	JobID        string    `gorm:"size:32;index"`
	Time         time.Time `gorm:"index"`
	Level        string    `gorm:"size:8"`
	Type         string    `gorm:"size:48"`
	Message      string    `gorm:"size:2048"`
	DeploymentID uint
}

// SchemaMigration records which schema version the database is at.
type SchemaMigration struct {
	Version   int `gorm:"primaryKey;autoIncrement:false"`
	Name      string
	AppliedAt time.Time
}

// migrations are applied in order, each once. The first creates the schema;
// later ones change it. gorm's AutoMigrate only adds, so changes that drop or
// rewrite data get their own step here.
var migrations = []struct {
	version int
	name    string
	up      func(tx *gorm.DB) error
}{
	{1, "jobs, deployments, events", func(tx *gorm.DB) error {
		return tx.Migrator().AutoMigrate(&Job{}, &Deployment{}, &Event{})
	}},
	// notify: the notifier keeps its tables (notify_*: alerts, notifications,
	// the delivery outbox and its attempts, silences, the notification log)
	// in this database; their models and this step live in package notify.
	{2, "notify: alerts, outbox, silences", notify.Migrate},
	{3, "daemon lease", func(tx *gorm.DB) error { return tx.Migrator().AutoMigrate(&Lease{}) }},
}

// Store is the daemon's metadata database.
type Store struct {
	db *gorm.DB
}

// OpenStore opens the database and brings its schema up to date.
func OpenStore(driver, dsn string) (*Store, error) {
	var dial gorm.Dialector
	switch driver {
	case "sqlite":
		// WAL and a busy timeout let the API read while the watcher writes.
		dial = sqlite.Open(dsn + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)")
	case "mysql":
		dial = mysql.Open(dsn)
	case "postgres":
		dial = postgres.Open(dsn)
	default:
		return nil, fmt.Errorf("database.driver: unknown driver %q", driver)
	}
	db, err := gorm.Open(dial, &gorm.Config{Logger: logger.Discard, NowFunc: func() time.Time { return time.Now().UTC() }})
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", driver, err)
	}
	if driver == "sqlite" {
		sqlDB, err := db.DB()
		if err != nil {
			return nil, err
		}
		sqlDB.SetMaxOpenConns(1) // one writer; SQLite serialises anyway
	}
	s := &Store{db: db}
	if err := s.migrate(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) migrate() error {
	if err := s.db.AutoMigrate(&SchemaMigration{}); err != nil {
		return fmt.Errorf("schema migrations table: %w", err)
	}
	var done []SchemaMigration
	if err := s.db.Find(&done).Error; err != nil {
		return fmt.Errorf("read schema migrations: %w", err)
	}
	applied := map[int]bool{}
	for _, m := range done {
		applied[m.Version] = true
	}
	for _, m := range migrations {
		if applied[m.version] {
			continue
		}
		err := s.db.Transaction(func(tx *gorm.DB) error {
			if err := m.up(tx); err != nil {
				return err
			}
			return tx.Create(&SchemaMigration{Version: m.version, Name: m.name, AppliedAt: time.Now().UTC()}).Error
		})
		if err != nil {
			return fmt.Errorf("schema migration %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

// SchemaVersion is the newest migration applied.
func (s *Store) SchemaVersion() (int, error) {
	var v int
	err := s.db.Model(&SchemaMigration{}).Select("COALESCE(MAX(version), 0)").Scan(&v).Error
	return v, err
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Close closes the database.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// CreateJob stores a new job, unless an unfinished job of the same name exists.
func (s *Store) CreateJob(ctx context.Context, j *Job, ev Event) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var other Job
		err := tx.Where("name = ? AND state NOT IN ?", j.Name, terminalStates).First(&other).Error
		if err == nil {
			return fmt.Errorf("%w: job %q is already %s as %s", ErrConflict, j.Name, other.State, other.ID)
		}
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}
		if err := tx.Create(j).Error; err != nil {
			return err
		}
		ev.JobID = j.ID
		return tx.Create(&ev).Error
	})
}

// Job returns the job with the given id, or the one job whose id starts with it.
func (s *Store) Job(ctx context.Context, idOrPrefix string) (Job, error) {
	var j Job
	err := s.db.WithContext(ctx).Where("id = ?", idOrPrefix).First(&j).Error
	if err == nil {
		return j, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return j, err
	}
	// Only hex prefixes are looked up, so LIKE wildcards never reach the query.
	if len(idOrPrefix) < 4 || !isHex(idOrPrefix) {
		return j, fmt.Errorf("%w: job %q", ErrNotFound, idOrPrefix)
	}
	var found []Job
	if err := s.db.WithContext(ctx).Where("id LIKE ?", idOrPrefix+"%").Limit(2).Find(&found).Error; err != nil {
		return j, err
	}
	switch len(found) {
	case 0:
		return j, fmt.Errorf("%w: job %q", ErrNotFound, idOrPrefix)
	case 1:
		return found[0], nil
	}
	return j, fmt.Errorf("%w: %q names more than one job", ErrAmbiguous, idOrPrefix)
}

// Jobs lists jobs, newest first, optionally only those in the given states.
func (s *Store) Jobs(ctx context.Context, states []string) ([]Job, error) {
	var jobs []Job
	q := s.db.WithContext(ctx).Order("created_at DESC")
	if len(states) > 0 {
		q = q.Where("state IN ?", states)
	}
	return jobs, q.Find(&jobs).Error
}

// ActiveDeployment returns the job's active deployment, if it has one.
func (s *Store) ActiveDeployment(ctx context.Context, jobID string) (*Deployment, error) {
	var d Deployment
	err := s.db.WithContext(ctx).Where("job_id = ? AND active = ?", jobID, true).First(&d).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// LatestDeployment returns the job's newest deployment, active or not.
func (s *Store) LatestDeployment(ctx context.Context, jobID string) (*Deployment, error) {
	var d Deployment
	err := s.db.WithContext(ctx).Where("job_id = ?", jobID).Order("attempt DESC").First(&d).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// Deployments lists a job's deployments, newest first.
func (s *Store) Deployments(ctx context.Context, jobID string) ([]Deployment, error) {
	var ds []Deployment
	return ds, s.db.WithContext(ctx).Where("job_id = ?", jobID).Order("attempt DESC").Find(&ds).Error
}

// Events lists events, newest first; jobID "" means all jobs.
func (s *Store) Events(ctx context.Context, jobID string, limit int) ([]Event, error) {
	var evs []Event
	q := s.db.WithContext(ctx).Order("id DESC").Limit(limit)
	if jobID != "" {
		q = q.Where("job_id = ?", jobID)
	}
	return evs, q.Find(&evs).Error
}

// BeginDeployment records a new active deployment of the job before anything
// is started, so that a daemon that dies half-way finds it again. It fails with
// ErrConflict if the job already has an active deployment.
func (s *Store) BeginDeployment(ctx context.Context, d *Deployment) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Deployment{}).Where("job_id = ? AND active = ?", d.JobID, true).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: job %s already has an active deployment", ErrConflict, d.JobID)
		}
		var last int
		if err := tx.Model(&Deployment{}).Where("job_id = ?", d.JobID).Select("COALESCE(MAX(attempt), 0)").Scan(&last).Error; err != nil {
			return err
		}
		d.Attempt = last + 1
		d.Active = true
		return tx.Create(d).Error
	})
}

// SaveDeployment writes a deployment's fields.
func (s *Store) SaveDeployment(ctx context.Context, d *Deployment) error {
	return s.db.WithContext(ctx).Save(d).Error
}

// SaveJob writes a job's fields and appends events, in one transaction.
func (s *Store) SaveJob(ctx context.Context, j *Job, evs ...Event) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Save(j).Error; err != nil {
			return err
		}
		for i := range evs {
			evs[i].JobID = j.ID
			if err := tx.Create(&evs[i]).Error; err != nil {
				return err
			}
		}
		return nil
	})
}

// UpdateDesired changes what is wanted of a job, unless it has already ended.
func (s *Store) UpdateDesired(ctx context.Context, id, desired string, ev Event) (Job, error) {
	var j Job
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("id = ?", id).First(&j).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return fmt.Errorf("%w: job %q", ErrNotFound, id)
			}
			return err
		}
		if isTerminal(j.State) {
			return fmt.Errorf("%w: job %s has already ended (%s)", ErrConflict, j.ID, j.State)
		}
		j.DesiredState = desired
		if err := tx.Save(&j).Error; err != nil {
			return err
		}
		ev.JobID = j.ID
		return tx.Create(&ev).Error
	})
	return j, err
}

// RecentRestarts counts restart deployments of the job started since t.
func (s *Store) RecentRestarts(ctx context.Context, jobID string, since time.Time) (int, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&Deployment{}).
		Where("job_id = ? AND reason = ? AND started_at >= ?", jobID, ReasonRestart, since).Count(&n).Error
	return int(n), err
}

// CountJobsByState is used for the jobs gauge.
func (s *Store) CountJobsByState(ctx context.Context) (map[string]int, error) {
	var rows []struct {
		State string
		N     int
	}
	if err := s.db.WithContext(ctx).Model(&Job{}).Select("state, COUNT(*) AS n").Group("state").Scan(&rows).Error; err != nil {
		return nil, err
	}
	m := map[string]int{}
	for _, r := range rows {
		m[r.State] = r.N
	}
	return m, nil
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// AddEvent records one event.
func (s *Store) AddEvent(ctx context.Context, ev Event) error {
	return s.db.WithContext(ctx).Create(&ev).Error
}
