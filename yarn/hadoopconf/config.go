// Package hadoopconf reads a Hadoop client configuration — core-site.xml,
// hdfs-site.xml and yarn-site.xml from HADOOP_CONF_DIR, with explicit
// overrides — and resolves what Tidewatch needs from it: the ResourceManager
// web and scheduler addresses (with RM HA and the HTTPS policy), the default
// filesystem and its NameNode addresses (with HDFS HA nameservices), and the
// Hadoop user name.
package hadoopconf

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
)

// Sentinel errors.
var (
	ErrSyntax   = errors.New("hadoopconf: malformed configuration file")
	ErrMissing  = errors.New("hadoopconf: required property missing")
	ErrInvalid  = errors.New("hadoopconf: invalid property value")
	ErrNotHDFS  = errors.New("hadoopconf: default filesystem is not HDFS")
	ErrNoUser   = errors.New("hadoopconf: no Hadoop user name")
	ErrNoConfig = errors.New("hadoopconf: configuration directory unreadable")
)

// DefaultFiles are read from the configuration directory, in this order.
var DefaultFiles = []string{"core-site.xml", "hdfs-site.xml", "yarn-site.xml"}

// defaults are the *-default.xml values of Hadoop 3.3 for the keys this
// package resolves.
var defaults = map[string]string{
	"fs.defaultFS":                              "file:///",
	"hadoop.security.authentication":            "simple",
	"yarn.http.policy":                          "HTTP_ONLY",
	"yarn.resourcemanager.hostname":             "0.0.0.0",
	"yarn.resourcemanager.webapp.address":       "${yarn.resourcemanager.hostname}:8088",
	"yarn.resourcemanager.webapp.https.address": "${yarn.resourcemanager.hostname}:8090",
	"yarn.resourcemanager.scheduler.address":    "${yarn.resourcemanager.hostname}:8030",
	"yarn.resourcemanager.address":              "${yarn.resourcemanager.hostname}:8032",
	"yarn.resourcemanager.ha.enabled":           "false",
	"yarn.resourcemanager.am.max-attempts":      "2",
}

// Options say where the configuration comes from.
type Options struct {
	// Dir is the configuration directory; "" means $HADOOP_CONF_DIR, and if
	// that is unset too no file is read (defaults and Overrides only).
	Dir string
	// Files are read from Dir in order (default DefaultFiles). A missing
	// file is skipped, as Hadoop skips a missing site file.
	Files []string
	// Overrides win over every file, final properties included.
	Overrides map[string]string
	// User overrides HADOOP_USER_NAME.
	User string
	// Getenv reads the environment (default os.Getenv).
	Getenv func(string) string
}

// Config is a loaded configuration.
type Config struct {
	props   map[string]string
	final   map[string]bool
	sources map[string]string
	user    string
	getenv  func(string) string
	// Files lists the files that were read.
	Files []string
}

// Load reads the configuration described by opts.
func Load(opts Options) (*Config, error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Files == nil {
		opts.Files = DefaultFiles
	}
	c := &Config{props: map[string]string{}, final: map[string]bool{}, sources: map[string]string{}, getenv: opts.Getenv, user: opts.User}
	dir := opts.Dir
	if dir == "" {
		dir = opts.Getenv("HADOOP_CONF_DIR")
	}
	if dir != "" {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("%w: %s: not a directory (%v)", ErrNoConfig, dir, err)
		}
		for _, name := range opts.Files {
			path := filepath.Join(dir, name)
			f, err := os.Open(path)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrNoConfig, err)
			}
			props, err := Parse(f)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			c.add(props, name)
			c.Files = append(c.Files, path)
		}
	}
	for k, v := range opts.Overrides {
		c.props[k] = v
		c.sources[k] = "override"
	}
	return c, nil
}

// FromMap builds a configuration from properties alone (for tests and
// callers that hold the values already).
func FromMap(props map[string]string) *Config {
	c, _ := Load(Options{Dir: "", Overrides: props, Files: []string{}, Getenv: func(string) string { return "" }})
	return c
}

// add merges one file's properties; a property made final by an earlier
// file keeps its value.
func (c *Config) add(props []Property, source string) {
	for _, p := range props {
		if c.final[p.Name] {
			continue
		}
		c.props[p.Name] = p.Value
		c.sources[p.Name] = source
		if p.Final {
			c.final[p.Name] = true
		}
	}
}

// Source tells where a key's value came from: a file name, "override",
// "default" or "" if unset.
func (c *Config) Source(key string) string {
	if s, ok := c.sources[key]; ok {
		return s
	}
	if _, ok := defaults[key]; ok {
		return "default"
	}
	return ""
}

// maxSubst is Hadoop's MAX_SUBST.
const maxSubst = 20

// maxValueLen stops expansion that grows without bound (a=${a}${a}).
const maxValueLen = 1 << 20

// Lookup returns a key's value with ${var} substituted (from other keys, or
// ${env.NAME} from the environment), falling back to the Hadoop default.
// Unresolvable references stay as written, as in Hadoop.
func (c *Config) Lookup(key string) (string, bool) {
	v, ok := c.props[key]
	if !ok {
		v, ok = defaults[key]
	}
	if !ok {
		return "", false
	}
	return c.substitute(v), true
}

// Get is Lookup without the flag; "" for an unset key.
func (c *Config) Get(key string) string {
	v, _ := c.Lookup(key)
	return v
}

// Trimmed is Get with surrounding white space removed (Hadoop's getTrimmed).
func (c *Config) Trimmed(key string) string { return strings.TrimSpace(c.Get(key)) }

// Strings splits a comma-separated value, trimming and dropping empties.
func (c *Config) Strings(key string) []string {
	var out []string
	for _, s := range strings.Split(c.Get(key), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Bool reads a boolean ("true"/"false", case-insensitive); def if unset.
func (c *Config) Bool(key string, def bool) (bool, error) {
	v, ok := c.Lookup(key)
	if !ok || strings.TrimSpace(v) == "" {
		return def, nil
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("%w: %s = %q is not true or false", ErrInvalid, key, v)
}

func (c *Config) substitute(v string) string {
	for range maxSubst {
		start := strings.Index(v, "${")
		if start < 0 {
			return v
		}
		changed := false
		var b strings.Builder
		rest := v
		for {
			i := strings.Index(rest, "${")
			if i < 0 {
				b.WriteString(rest)
				break
			}
			j := strings.IndexByte(rest[i:], '}')
			if j < 0 {
				b.WriteString(rest)
				break
			}
			name := rest[i+2 : i+j]
			b.WriteString(rest[:i])
			if b.Len() > maxValueLen {
				return v
			}
			if val, ok := c.resolveVar(name); ok {
				b.WriteString(val)
				changed = true
			} else {
				b.WriteString(rest[i : i+j+1])
			}
			rest = rest[i+j+1:]
		}
		v = b.String()
		if !changed {
			return v
		}
	}
	return v
}

func (c *Config) resolveVar(name string) (string, bool) {
	if env, ok := strings.CutPrefix(name, "env."); ok {
		// ${env.NAME:-default} and ${env.NAME-default} as in Hadoop 3.
		if k, def, ok := strings.Cut(env, ":-"); ok {
			if v := c.getenv(k); v != "" {
				return v, true
			}
			return def, true
		}
		if k, def, ok := strings.Cut(env, "-"); ok {
			if v, set := lookupEnv(c.getenv, k); set {
				return v, true
			}
			return def, true
		}
		v := c.getenv(env)
		return v, v != ""
	}
	if name == "user.name" {
		if u, err := c.User(); err == nil {
			return u, true
		}
	}
	if v, ok := c.props[name]; ok {
		return v, true
	}
	v, ok := defaults[name]
	return v, ok
}

func lookupEnv(getenv func(string) string, k string) (string, bool) {
	v := getenv(k)
	return v, v != ""
}

// User returns the Hadoop user: Options.User, else HADOOP_USER_NAME, else
// the operating-system user (as Hadoop's simple authentication does).
func (c *Config) User() (string, error) {
	if c.user != "" {
		return c.user, nil
	}
	if u := c.getenv("HADOOP_USER_NAME"); u != "" {
		return u, nil
	}
	u, err := user.Current()
	if err != nil || u.Username == "" {
		return "", fmt.Errorf("%w: set HADOOP_USER_NAME (%v)", ErrNoUser, err)
	}
	return u.Username, nil
}
