package supportlayer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/monitor"
	"github.com/tidewatch/tidewatch/notify"
	"github.com/tidewatch/tidewatch/supportlayer/deploy"
	"github.com/tidewatch/tidewatch/supportlayer/deploy/local"
	yarndeploy "github.com/tidewatch/tidewatch/supportlayer/deploy/yarn"
	"github.com/tidewatch/tidewatch/supportlayer/jobmaster"
)

// ErrDataDirInUse is returned when another daemon holds the data directory.
var ErrDataDirInUse = errors.New("supportlayer: data directory is in use by another daemon")

// Daemon is the support layer: REST API, metadata store, watcher and deployer.
type Daemon struct {
	opts       Options
	log        *logrus.Entry
	now        func() time.Time
	store      *Store
	deployer   deploy.Deployer
	master     *jobmaster.Client
	watcher    *watcher
	notifier   *notify.Notifier
	monitor    *monitor.Monitor // nil without monitor.rules
	forecaster *forecaster      // nil without the monitor or forecast.interval
	lock       *os.File
	lease      Lease         // this daemon's lease on the database
	leaseLost  chan error    // receives why, if the lease is lost
	leaseStop  chan struct{} // ends the renewal
	leaseDone  chan struct{}

	srv      *http.Server
	listener net.Listener
	serveErr chan error

	stopOnce sync.Once
}

// deployerFactory builds the deployer; onExit asks the watcher for an
// immediate look at a job whose process ended.
type deployerFactory func(opts Options, log *logrus.Entry, onExit func(jobID string)) (deploy.Deployer, error)

// deployers are the deployer factories by the name the deployer key takes.
var deployers = map[string]deployerFactory{
	local.Name:      localDeployer,
	yarndeploy.Name: yarnDeployer,
}

func localDeployer(opts Options, log *logrus.Entry, onExit func(jobID string)) (deploy.Deployer, error) {
	return local.New(local.Config{
		Binary:     opts.Runtime.Binary,
		JobsDir:    filepath.Join(opts.DataDir, "jobs"),
		ListenHost: "127.0.0.1",
		LogFormat:  opts.Log.Format,
	}, log, onExit)
}

// yarnDeployer connects to the cluster: the ResourceManagers and HDFS.
func yarnDeployer(opts Options, log *logrus.Entry, _ func(jobID string)) (deploy.Deployer, error) {
	return yarndeploy.Open(opts.yarnConfig(), nil, log)
}

// New prepares a daemon: it validates the options, takes the data directory,
// opens the store and builds the deployer. Nothing runs until Start.
func New(opts Options, log *logrus.Entry) (*Daemon, error) {
	f, ok := deployers[opts.Deployer]
	if !ok {
		if err := opts.Validate(); err != nil {
			return nil, err // names the deployer key
		}
		return nil, fmt.Errorf("deployer: %q is not built in", opts.Deployer)
	}
	return newDaemon(opts, log, f)
}

func newDaemon(opts Options, log *logrus.Entry, newDeployer deployerFactory) (*Daemon, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	opts.DataDir = dataDir
	if opts.Checkpoints.Dir == "" {
		opts.Checkpoints.Dir = filepath.Join(dataDir, "checkpoints")
	}
	// A local directory is made absolute and created; a URL (hdfs://…) is
	// passed on as is, and the job masters create it.
	mkdirs := []string{dataDir}
	if strings.Contains(opts.Checkpoints.Dir, "://") {
		opts.Checkpoints.Dir = strings.TrimRight(opts.Checkpoints.Dir, "/")
	} else {
		if opts.Checkpoints.Dir, err = filepath.Abs(opts.Checkpoints.Dir); err != nil {
			return nil, fmt.Errorf("checkpoints.dir: %w", err)
		}
		mkdirs = append(mkdirs, opts.Checkpoints.Dir)
	}
	if opts.Runtime.Binary == "" {
		if opts.Runtime.Binary, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("runtime.binary: cannot find this executable: %w", err)
		}
	}
	for _, dir := range mkdirs {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("data_dir: %w", err)
		}
	}
	lock, err := lockFile(filepath.Join(dataDir, "daemon.lock"))
	if err != nil {
		return nil, err
	}
	d := &Daemon{opts: opts, log: log, now: func() time.Time { return time.Now().UTC() }, lock: lock,
		master: jobmaster.New(opts.Watch.ProbeTimeout)}

	dsn := opts.Database.DSN
	if opts.Database.Driver == "sqlite" && dsn == "" {
		dsn = filepath.Join(dataDir, "tidewatch.db")
	}
	if d.store, err = OpenStore(opts.Database.Driver, dsn); err != nil {
		lock.Close()
		return nil, err
	}
	if err := d.acquireLease(); err != nil {
		d.store.Close()
		lock.Close()
		return nil, err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := newMetrics(reg)

	// notify: alerts to people, through an outbox in the metadata database.
	var ncfg notify.Config
	if opts.Notify != nil {
		ncfg = *opts.Notify
	}
	if d.notifier, err = notify.New(d.store.db, ncfg, notify.Options{Log: log.WithField("component", "notify"), Registerer: reg}); err != nil {
		d.store.Close()
		lock.Close()
		return nil, err
	}

	w := &watcher{
		store: d.store, master: d.master, policy: opts.Restart, interval: opts.Watch.Interval,
		to:       timeouts{Start: opts.Watch.StartTimeout, Stop: opts.Watch.StopTimeout, Probe: opts.Watch.ProbeTimeout},
		ckptRoot: opts.Checkpoints.Dir, log: log.WithField("component", "watcher"), metrics: m, now: d.now,
	}
	d.watcher = w
	if d.deployer, err = newDeployer(opts, log, w.Kick); err != nil {
		d.store.Close()
		lock.Close()
		return nil, err
	}
	w.deployer = d.deployer

	// monitor: CEP rules over the job masters' metrics, firing into the notifier.
	if d.monitor, err = wireMonitor(d, opts.Monitor, d.notifier, reg); err != nil {
		d.store.Close()
		lock.Close()
		return nil, fmt.Errorf("monitor: %w", err)
	}
	if d.monitor != nil && opts.Forecast.Interval > 0 {
		d.forecaster = newForecaster(opts.Forecast, d.store, d.monitor, d.notifier, log.WithField("component", "forecast"), d.now)
	}

	a := &api{d: d, log: log.WithField("component", "api"), token: opts.Auth.Token, reg: reg, metrics: m}
	d.srv = &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second}
	return d, nil
}

// Start binds the REST listener and starts the watcher.
func (d *Daemon) Start() error {
	if err := d.notifier.Start(context.Background()); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", d.opts.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	d.listener = ln
	d.serveErr = make(chan error, 1)
	go func() {
		err := d.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		d.serveErr <- err
	}()
	d.leaseStop, d.leaseDone = make(chan struct{}), make(chan struct{})
	go d.renewLease()
	d.watcher.Start()
	if d.monitor != nil {
		if d.notifier != nil {
			d.monitor.Adopt(context.Background(), monitorFirings(d.notifier.Firing()))
		}
		d.monitor.Start()
	}
	if d.forecaster != nil {
		d.forecaster.Start()
	}
	d.log.WithFields(logrus.Fields{"listen": ln.Addr().String(), "data_dir": d.opts.DataDir, "database": d.opts.Database.Driver, "deployer": d.deployer.Name()}).Info("daemon started")
	return nil
}

// Notifier is the daemon's notifier, for the monitor to raise and resolve
// alerts through.
func (d *Daemon) Notifier() *notify.Notifier { return d.notifier }

// Addr is the address the REST API listens on, once started.
func (d *Daemon) Addr() string { return d.listener.Addr().String() }

// Stop ends the REST API and the watcher and closes the store. Jobs keep
// running; the next daemon adopts them. Stop is idempotent.
func (d *Daemon) Stop(ctx context.Context) error {
	var err error
	d.stopOnce.Do(func() {
		if d.listener != nil {
			err = d.srv.Shutdown(ctx)
			if serr := <-d.serveErr; serr != nil {
				err = errors.Join(err, serr)
			}
		}
		d.watcher.Stop()
		if d.forecaster != nil {
			d.forecaster.Stop()
		}
		if d.monitor != nil {
			err = errors.Join(err, d.monitor.Stop(ctx))
		}
		if c, ok := d.deployer.(io.Closer); ok {
			err = errors.Join(err, c.Close())
		}
		if d.leaseStop != nil {
			close(d.leaseStop)
			<-d.leaseDone
		}
		if rerr := d.store.ReleaseLease(ctx, d.lease, d.now()); rerr != nil {
			d.log.WithError(rerr).Warn("release the database lease")
		}
		err = errors.Join(err, d.notifier.Stop(ctx), d.store.Close(), d.lock.Close())
		d.log.Info("daemon stopped")
	})
	return err
}

// Run starts a daemon and stops it when ctx is cancelled.
func Run(ctx context.Context, opts Options, log *logrus.Entry) error {
	d, err := New(opts, log)
	if err != nil {
		return err
	}
	if err := d.Start(); err != nil {
		d.Stop(context.Background())
		return err
	}
	select {
	case <-ctx.Done():
	case err = <-d.serveErr:
		d.serveErr <- err // Stop reads it again
	case err = <-d.leaseLost:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(err, d.Stop(sctx))
}

// DefaultLeaseTTL is database.lease_ttl's default.
const DefaultLeaseTTL = 30 * time.Second

// acquireLease takes the database's daemon lease, waiting up to its TTL
// (and a little) for a lease whose holder stopped renewing to expire.
func (d *Daemon) acquireLease() error {
	host, _ := os.Hostname()
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	ttl := d.opts.Database.LeaseTTL
	d.lease = Lease{Name: daemonLease, Holder: hex.EncodeToString(id), Host: host, PID: os.Getpid(), Listen: d.opts.Listen}
	d.leaseLost = make(chan error, 1)
	deadline := time.Now().Add(ttl + ttl/5 + time.Second)
	logged := false
	for {
		now := d.now()
		want := d.lease
		want.ExpiresAt, want.RenewedAt = now.Add(ttl), now
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		got, err := d.store.AcquireLease(ctx, want, now)
		cancel()
		if err == nil {
			d.lease = got
			return nil
		}
		if !errors.Is(err, ErrLeaseHeld) {
			return fmt.Errorf("database: lease: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("database: another daemon uses this database (%s); two daemons on one database would both "+
				"deploy its jobs: stop the other one or give this one its own database: %w", got, err)
		}
		if !logged {
			d.log.WithField("holder", got.String()).Warn("the database is leased to another daemon; waiting for the lease to expire")
			logged = true
		}
		time.Sleep(min(time.Second, ttl/4))
	}
}

// renewLease renews the lease every third of its TTL until Stop. A lease
// taken by another daemon, or one that expired because the database could
// not be reached, is lost: the daemon must stop, since the other daemon
// now deploys the jobs.
func (d *Daemon) renewLease() {
	defer close(d.leaseDone)
	ttl := d.opts.Database.LeaseTTL
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-d.leaseStop:
			return
		case <-t.C:
		}
		now := d.now()
		next := d.lease
		next.ExpiresAt, next.RenewedAt = now.Add(ttl), now
		ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
		err := d.store.RenewLease(ctx, next)
		cancel()
		switch {
		case err == nil:
			d.lease = next
			continue
		case errors.Is(err, ErrLeaseHeld):
		case now.Before(d.lease.ExpiresAt):
			d.log.WithError(err).Warn("renew the database lease; retrying")
			continue
		default:
			err = fmt.Errorf("the lease expired at %s without renewal: %w", d.lease.ExpiresAt.Format(time.RFC3339), err)
		}
		d.log.WithError(err).Error("lost the database lease; stopping")
		d.watcher.Stop()
		d.leaseLost <- fmt.Errorf("database: lost the lease: %w", err)
		return
	}
}

func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrDataDirInUse, filepath.Dir(path))
		}
		return nil, fmt.Errorf("data_dir: lock %s: %w", path, err)
	}
	return f, nil
}
