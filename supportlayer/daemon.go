package supportlayer

import (
	"context"
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
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(err, d.Stop(sctx))
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
