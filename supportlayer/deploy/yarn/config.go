package yarn

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// Config configures the YARN deployer. Its fields are the daemon's `yarn:`
// and `hdfs:` keys (named in the comments and in Validate's messages) plus
// what the daemon fills in. Empty cluster fields are taken from the Hadoop
// client configuration in HADOOP_CONF_DIR.
type Config struct {
	// ResourceManagers are the RM web base URLs (yarn.resourcemanager), one
	// per RM of an HA group; empty: yarn-site.xml of HADOOP_CONF_DIR.
	ResourceManagers []string
	// Queue is the scheduler queue of every application (yarn.queue).
	Queue string
	// StagingDir is the HDFS directory the binary and the job specs are
	// uploaded to (yarn.staging_dir); empty: /user/<user>/.staging.
	StagingDir string
	// SchedulerAddresses are passed to the AM as
	// TIDEWATCH_RM_SCHEDULER_ADDRESS (yarn.scheduler_address); empty: Open
	// takes them from yarn-site.xml of HADOOP_CONF_DIR (one per RM with RM
	// HA), and without that file the AM reads yarn-site.xml from the
	// HADOOP_CONF_DIR its NodeManager gives it.
	SchedulerAddresses []string
	// MaxAttempts is the number of AM attempts YARN makes before the
	// application fails (yarn.max_attempts); the RM caps it at
	// yarn.resourcemanager.am.max-attempts.
	MaxAttempts int
	// AttemptFailuresValidityInterval: when positive, only AM failures
	// within this window count toward MaxAttempts
	// (yarn.attempt_failures_validity_interval).
	AttemptFailuresValidityInterval time.Duration
	// NameNode is host:port of the NameNode (hdfs.namenode); empty:
	// fs.defaultFS and hdfs-site.xml of HADOOP_CONF_DIR.
	NameNode string
	// User is the Hadoop user (hdfs.user): user.name of every RM request,
	// owner of the staged files and HADOOP_USER_NAME of the AM. Empty:
	// HADOOP_USER_NAME, else the operating-system user.
	User string
	// HadoopConfDir is the Hadoop client configuration directory; empty:
	// $HADOOP_CONF_DIR (and none if that is unset).
	HadoopConfDir string

	// Binary is the local tidewatch executable staged as the runtime
	// (runtime.binary).
	Binary string
	// ObserveInterval is how long one listing of the RM's applications
	// serves Observe when no watch cycle begins (watch.interval; default 5s).
	ObserveInterval time.Duration
	// KillTimeout bounds Kill's wait for the RM to report the application
	// KILLED (default 30s); KillPoll is the interval between the kill
	// requests (default 250ms).
	KillTimeout time.Duration
	KillPoll    time.Duration
	// RMRequestTimeout bounds one HTTP exchange with an RM (default 10s);
	// RMMaxRetries is the RM client's retry rounds (default 2).
	RMRequestTimeout time.Duration
	RMMaxRetries     int
}

// Defaults of the daemon's yarn keys.
const (
	DefaultQueue       = "default"
	DefaultMaxAttempts = 2
)

// EnsureDefaults fills the fields that have a fixed default.
func (c *Config) EnsureDefaults() {
	if c.Queue == "" {
		c.Queue = DefaultQueue
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.ObserveInterval <= 0 {
		c.ObserveInterval = 5 * time.Second
	}
	if c.KillTimeout <= 0 {
		c.KillTimeout = 30 * time.Second
	}
	if c.KillPoll <= 0 {
		c.KillPoll = 250 * time.Millisecond
	}
	if c.RMRequestTimeout <= 0 {
		c.RMRequestTimeout = 10 * time.Second
	}
	if c.RMMaxRetries == 0 {
		c.RMMaxRetries = 2
	}
}

// Validate names the first configuration key whose value cannot work. It
// checks the keys a user sets; Binary is checked by New.
func (c Config) Validate() error {
	for i, u := range c.ResourceManagers {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.RawQuery != "" || p.Fragment != "" || p.User != nil {
			return fmt.Errorf("yarn.resourcemanager[%d]: %q is not an RM web address like http://rm1.example.com:8088", i, u)
		}
	}
	if c.Queue == "" || strings.ContainsAny(c.Queue, ", \t\n") {
		return fmt.Errorf("yarn.queue: must be a queue name without spaces or commas, got %q", c.Queue)
	}
	if c.StagingDir != "" {
		if strings.Contains(c.StagingDir, "://") {
			return fmt.Errorf("yarn.staging_dir: must be an absolute path on HDFS (the namenode comes from hdfs.namenode), got the URL %q", c.StagingDir)
		}
		if !path.IsAbs(c.StagingDir) || path.Clean(c.StagingDir) == "/" {
			return fmt.Errorf("yarn.staging_dir: must be an absolute path below /, got %q", c.StagingDir)
		}
	}
	for i, a := range c.SchedulerAddresses {
		if err := checkHostPort(a); err != nil {
			return fmt.Errorf("yarn.scheduler_address[%d]: %w", i, err)
		}
	}
	if c.MaxAttempts < 1 {
		return fmt.Errorf("yarn.max_attempts: must be at least 1, got %d", c.MaxAttempts)
	}
	if c.AttemptFailuresValidityInterval < 0 {
		return fmt.Errorf("yarn.attempt_failures_validity_interval: must not be negative, got %s", c.AttemptFailuresValidityInterval)
	}
	if c.AttemptFailuresValidityInterval > 0 && c.AttemptFailuresValidityInterval < time.Millisecond {
		return fmt.Errorf("yarn.attempt_failures_validity_interval: YARN counts it in milliseconds, got %s", c.AttemptFailuresValidityInterval)
	}
	if c.NameNode != "" {
		if err := checkHostPort(c.NameNode); err != nil {
			return fmt.Errorf("hdfs.namenode: %w", err)
		}
	}
	if c.User != "" && strings.ContainsAny(c.User, " \t\n,/:\"'$`\\") {
		return fmt.Errorf("hdfs.user: %q is not a user name", c.User)
	}
	return nil
}

func checkHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" || strings.ContainsAny(host, "/?#@ ") {
		return fmt.Errorf("%q is not host:port", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("%q has a bad port", a)
	}
	return nil
}

// ValidateCheckpointDir checks that dir (checkpoints.dir) is a location
// every node of the cluster reaches: an hdfs:// URL, or a file:// URL for a
// cluster of one node. A plain path would be a different directory on each
// node, and an AM restarted on another node would not find its checkpoints.
func ValidateCheckpointDir(dir string) error {
	const example = "hdfs://namenode:8020/tidewatch/checkpoints"
	if dir == "" {
		return fmt.Errorf("checkpoints.dir: must be set with deployer yarn, to a URL every node can reach (%s)", example)
	}
	if !strings.Contains(dir, "://") {
		return fmt.Errorf("checkpoints.dir: %q is a local path, which the cluster's nodes do not share; with deployer yarn use a URL every node can reach (%s), or file://%s explicitly on a one-node test cluster", dir, example, dir)
	}
	u, err := url.Parse(dir)
	if err != nil {
		return fmt.Errorf("checkpoints.dir: %q is not a URL: %v", dir, err)
	}
	switch u.Scheme {
	case "hdfs", "file":
	default:
		return fmt.Errorf("checkpoints.dir: scheme %q is not supported; use hdfs:// (or file:// on a one-node test cluster)", u.Scheme)
	}
	if !path.IsAbs(u.Path) || path.Clean(u.Path) == "/" {
		return fmt.Errorf("checkpoints.dir: %q needs an absolute directory below / after the host", dir)
	}
	if err := checkShellSafe(dir); err != nil {
		return fmt.Errorf("checkpoints.dir: %w", err)
	}
	return nil
}

// errUnsafeArg reports a value that cannot be put into the AM command.
var errUnsafeArg = errors.New("has characters the container's launch shell would interpret (allowed: letters, digits and _ . / : @ % + = , -)")

// checkShellSafe accepts the characters that need no quoting in the AM
// command, which the NodeManager runs with bash -c "…" (HADOOP_PROTOCOLS.md
// §2.2): paths and URLs, but no spaces, quotes, $ or backquotes.
func checkShellSafe(s string) error {
	if s == "" {
		return fmt.Errorf("%q is empty", s)
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("_./:@%+=,-", r):
		default:
			return fmt.Errorf("%q %w", s, errUnsafeArg)
		}
	}
	return nil
}
