package supportlayer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tidewatch/tidewatch/notify"
	yarndeploy "github.com/tidewatch/tidewatch/supportlayer/deploy/yarn"
)

// Options configure the daemon. Their YAML keys are the config-file keys; each
// key also has an environment variable: TIDEWATCH_ and the key in upper case with
// dots as underscores (watch.interval → TIDEWATCH_WATCH_INTERVAL).
type Options struct {
	Listen  string `yaml:"listen"`
	DataDir string `yaml:"data_dir"`

	Log struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`

	Database struct {
		// Driver is sqlite, mysql or postgres.
		Driver string `yaml:"driver"`
		// DSN of the database; for sqlite the default is <data_dir>/tidewatch.db.
		DSN string `yaml:"dsn"`
		// LeaseTTL is how long the daemon's lease on the database lasts
		// unless renewed (every third of it). A second daemon on the same
		// database waits this long for the lease and then refuses to start.
		LeaseTTL time.Duration `yaml:"lease_ttl"`
	} `yaml:"database"`

	Auth struct {
		// Token, when set, is required as a bearer token on /api/v1.
		Token string `yaml:"token"`
	} `yaml:"auth"`

	// Deployer is where jobs run: local (child processes of this machine) or
	// yarn (one YARN application per job; see Yarn and HDFS).
	Deployer string `yaml:"deployer"`

	Runtime struct {
		// Binary is the tidewatch executable deployed as the job runtime;
		// the default is the daemon's own executable.
		Binary string `yaml:"binary"`
	} `yaml:"runtime"`

	Checkpoints struct {
		// Dir holds one checkpoint directory per job; default <data_dir>/checkpoints.
		Dir string `yaml:"dir"`
	} `yaml:"checkpoints"`

	Watch struct {
		// Interval between two observations of every deployment.
		Interval time.Duration `yaml:"interval"`
		// ProbeTimeout bounds one request to a job master.
		ProbeTimeout time.Duration `yaml:"probe_timeout"`
		// StartTimeout is how long a new deployment may take to report RUNNING.
		StartTimeout time.Duration `yaml:"start_timeout"`
		// StopTimeout is how long a graceful stop may take before the process is killed.
		StopTimeout time.Duration `yaml:"stop_timeout"`
	} `yaml:"watch"`

	Restart RestartPolicy `yaml:"restart"`

	// Yarn configures the yarn deployer. Empty keys are taken from the Hadoop
	// client configuration in HADOOP_CONF_DIR.
	Yarn struct {
		// ResourceManager lists the RM web addresses (http://rm1:8088), one
		// per RM of an HA group; default: yarn-site.xml.
		ResourceManager []string `yaml:"resourcemanager"`
		// Queue is the scheduler queue of every job's application.
		Queue string `yaml:"queue"`
		// StagingDir is where the binary and job specs are uploaded on HDFS;
		// default /user/<hdfs.user>/.staging.
		StagingDir string `yaml:"staging_dir"`
		// SchedulerAddress lists host:port of the RM scheduler for the AM;
		// default: yarn.resourcemanager.scheduler.address of the daemon's yarn-site.xml
		// (RM HA aware), else the AM reads its node's yarn-site.xml.
		SchedulerAddress []string `yaml:"scheduler_address"`
		// MaxAttempts is how many AM attempts YARN makes per application.
		MaxAttempts int `yaml:"max_attempts"`
		// AttemptFailuresValidityInterval: when positive, only AM failures
		// within it count toward MaxAttempts.
		AttemptFailuresValidityInterval time.Duration `yaml:"attempt_failures_validity_interval"`
	} `yaml:"yarn"`

	// HDFS says how the yarn deployer reaches HDFS for staging.
	HDFS struct {
		// NameNode is host:port; default: fs.defaultFS of HADOOP_CONF_DIR.
		NameNode string `yaml:"namenode"`
		// User is the Hadoop user of RM requests, staged files and the AM;
		// default HADOOP_USER_NAME, else the operating-system user.
		User string `yaml:"user"`
	} `yaml:"hdfs"`

	// Notify is the alerting section (package notify): receivers and their
	// channels, routes, inhibition, rate limits, the outbox. Without it,
	// alerts are recorded and shown by the REST API but sent nowhere.
	Notify *notify.Config `yaml:"notify"`

	// Monitor runs CEP rules over every running job's metrics (RULES.md).
	Monitor MonitorOptions `yaml:"monitor"`

	// Forecast forecasts every running job's input from the monitor's
	// history (OPERATIONS.md, "Forecasting").
	Forecast ForecastOptions `yaml:"forecast"`
}

// RestartPolicy says how a job whose deployment died is brought back.
type RestartPolicy struct {
	// Strategy is fixed (Delay every time) or exponential (Delay doubling per
	// restart in the window, capped at MaxDelay).
	Strategy string        `yaml:"strategy"`
	Delay    time.Duration `yaml:"delay"`
	MaxDelay time.Duration `yaml:"max_delay"`
	// MaxRestarts within Window; one more failure makes the job FAILED.
	MaxRestarts int           `yaml:"max_restarts"`
	Window      time.Duration `yaml:"window"`
}

// DefaultOptions is the embedded default: everything on this machine.
func DefaultOptions() Options {
	var o Options
	o.Listen = "127.0.0.1:8080"
	o.DataDir = "./var"
	o.Monitor = DefaultMonitorOptions()
	o.Forecast = DefaultForecastOptions()
	o.Log.Level = "info"
	o.Log.Format = "text"
	o.Database.Driver = "sqlite"
	o.Database.LeaseTTL = DefaultLeaseTTL
	o.Deployer = "local"
	o.Watch.Interval = 5 * time.Second
	o.Watch.ProbeTimeout = 2 * time.Second
	o.Watch.StartTimeout = 60 * time.Second
	o.Watch.StopTimeout = 30 * time.Second
	o.Restart = RestartPolicy{Strategy: "exponential", Delay: time.Second, MaxDelay: time.Minute, MaxRestarts: 10, Window: 10 * time.Minute}
	o.Yarn.Queue = yarndeploy.DefaultQueue
	o.Yarn.MaxAttempts = yarndeploy.DefaultMaxAttempts
	return o
}

// yarnConfig is the yarn deployer's configuration from the options.
func (o Options) yarnConfig() yarndeploy.Config {
	return yarndeploy.Config{
		ResourceManagers:                o.Yarn.ResourceManager,
		Queue:                           o.Yarn.Queue,
		StagingDir:                      o.Yarn.StagingDir,
		SchedulerAddresses:              o.Yarn.SchedulerAddress,
		MaxAttempts:                     o.Yarn.MaxAttempts,
		AttemptFailuresValidityInterval: o.Yarn.AttemptFailuresValidityInterval,
		NameNode:                        o.HDFS.NameNode,
		User:                            o.HDFS.User,
		Binary:                          o.Runtime.Binary,
		ObserveInterval:                 o.Watch.Interval,
	}
}

// Validate names the first key whose value cannot work.
func (o Options) Validate() error {
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port: %v", o.Listen, err)
	}
	if o.DataDir == "" {
		return errors.New("data_dir: must be set")
	}
	switch o.Log.Level {
	case "trace", "debug", "info", "warn", "warning", "error":
	default:
		return fmt.Errorf("log.level: must be one of trace, debug, info, warn, error; got %q", o.Log.Level)
	}
	if o.Log.Format != "text" && o.Log.Format != "json" {
		return fmt.Errorf("log.format: must be text or json, got %q", o.Log.Format)
	}
	switch o.Database.Driver {
	case "sqlite":
	case "mysql", "postgres":
		if o.Database.DSN == "" {
			return fmt.Errorf("database.dsn: must be set for driver %s", o.Database.Driver)
		}
	default:
		return fmt.Errorf("database.driver: must be sqlite, mysql or postgres, got %q", o.Database.Driver)
	}
	if o.Database.LeaseTTL < time.Second {
		return fmt.Errorf("database.lease_ttl: must be at least 1s, got %s", o.Database.LeaseTTL)
	}
	switch o.Deployer {
	case "local":
	case "yarn":
		if err := yarndeploy.ValidateCheckpointDir(o.Checkpoints.Dir); err != nil {
			return err
		}
	default:
		return fmt.Errorf("deployer: must be local or yarn, got %q", o.Deployer)
	}
	// The yarn: and hdfs: keys are checked whichever deployer is in use.
	if err := o.yarnConfig().Validate(); err != nil {
		return err
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"watch.interval", o.Watch.Interval},
		{"watch.probe_timeout", o.Watch.ProbeTimeout},
		{"watch.start_timeout", o.Watch.StartTimeout},
		{"watch.stop_timeout", o.Watch.StopTimeout},
		{"restart.max_delay", o.Restart.MaxDelay},
		{"restart.window", o.Restart.Window},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%s: must be positive, got %s", d.key, d.v)
		}
	}
	if o.Watch.Interval < 100*time.Millisecond {
		return fmt.Errorf("watch.interval: must be at least 100ms, got %s", o.Watch.Interval)
	}
	if o.Notify != nil {
		if err := o.Notify.Validate(); err != nil { // names its keys notify.…
			return err
		}
	}
	if o.Monitor.Rules != "" {
		if err := o.Monitor.Validate(); err != nil {
			return err
		}
	}
	if err := o.Forecast.Validate(); err != nil {
		return err
	}
	return o.Restart.Validate()
}

// Validate names the first key of the policy whose value cannot work.
func (p RestartPolicy) Validate() error {
	if p.Strategy != "fixed" && p.Strategy != "exponential" {
		return fmt.Errorf("restart.strategy: must be fixed or exponential, got %q", p.Strategy)
	}
	if p.Delay < 0 {
		return fmt.Errorf("restart.delay: must not be negative, got %s", p.Delay)
	}
	if p.MaxDelay < p.Delay {
		return fmt.Errorf("restart.max_delay: must be at least restart.delay (%s), got %s", p.Delay, p.MaxDelay)
	}
	if p.MaxRestarts < 0 {
		return fmt.Errorf("restart.max_restarts: must not be negative, got %d", p.MaxRestarts)
	}
	return nil
}

// LoadOptions returns the defaults overridden by the config file at path (if
// path is not empty) and then by TIDEWATCH_* variables in env. Unknown keys and
// values of the wrong type are errors that name the key.
func LoadOptions(path string, env []string) (Options, error) {
	o := DefaultOptions()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return o, fmt.Errorf("config: %w", err)
		}
		if err := decodeConfig(data, &o); err != nil {
			return o, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := applyEnv(&o, env); err != nil {
		return o, err
	}
	// An empty list (`key: []`) is the same as an absent one.
	walkFields(reflect.ValueOf(&o).Elem(), "", func(_ string, f reflect.Value) {
		if f.Kind() == reflect.Slice && f.Len() == 0 {
			f.SetZero()
		}
	})
	return o, nil
}

func decodeConfig(data []byte, o *Options) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(o); err != nil {
		if errors.Is(err, io.EOF) { // an empty file is the defaults
			return nil
		}
		return errors.New(cleanYAMLError(err))
	}
	return nil
}

// cleanYAMLError rewrites yaml.v3's messages to name the key instead of the Go type.
func cleanYAMLError(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err.Error()
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		// "line 3: field foo not found in type supportlayer.Options"
		if i := strings.Index(m, " not found in type "); i >= 0 {
			m = strings.Replace(m[:i], "field ", "unknown key ", 1)
		}
		if i := strings.Index(m, " into "); i >= 0 {
			m = m[:i] + " into " + goTypeName(m[i+len(" into "):])
		}
		msgs = append(msgs, m)
	}
	return strings.Join(msgs, "; ")
}

func goTypeName(t string) string {
	switch t {
	case "time.Duration":
		return "a duration (like 5s)"
	case "int":
		return "an integer"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	case "[]string":
		return "a list (like [a, b])"
	}
	return t
}

// EnvKeys lists every configuration key and its environment variable.
func EnvKeys() map[string]string {
	keys := map[string]string{}
	walkFields(reflect.ValueOf(&Options{}).Elem(), "", func(key string, _ reflect.Value) {
		keys[key] = envName(key)
	})
	return keys
}

func envName(key string) string {
	return "TIDEWATCH_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// envAliases are short names documented for common settings.
var envAliases = map[string]string{"TIDEWATCH_TOKEN": "auth.token"}

func applyEnv(o *Options, env []string) error {
	vals := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, "TIDEWATCH_") {
			vals[k] = v
		}
	}
	var firstErr error
	walkFields(reflect.ValueOf(o).Elem(), "", func(key string, f reflect.Value) {
		name := envName(key)
		v, ok := vals[name]
		for alias, target := range envAliases {
			if target == key {
				if av, aok := vals[alias]; aok && !ok {
					v, ok, name = av, true, alias
				}
			}
		}
		if !ok || firstErr != nil {
			return
		}
		if err := setField(f, v); err != nil {
			firstErr = fmt.Errorf("%s (%s): %w", name, key, err)
		}
	})
	return firstErr
}

func walkFields(v reflect.Value, prefix string, fn func(key string, f reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		key := prefix + tag
		f := v.Field(i)
		if f.Kind() == reflect.Struct {
			walkFields(f, key+".", fn)
			continue
		}
		fn(key, f)
	}
}

func setField(f reflect.Value, s string) error {
	switch {
	case f.Type() == reflect.TypeOf(time.Duration(0)):
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (like 5s)", s)
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(s)
	case f.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		f.SetInt(int64(n))
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		// A list is written comma-separated: TIDEWATCH_YARN_RESOURCEMANAGER=http://rm1:8088,http://rm2:8088.
		var items []string
		for _, it := range strings.Split(s, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		f.Set(reflect.ValueOf(items))
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		f.SetBool(b)
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}
