package amrm

import (
	"encoding/xml"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// EnvSchedulerAddress is the environment variable in which the submitting
// client passes the scheduler address(es) to the AM: a comma-separated list
// of host:port (§2.4 option 1). YARN itself passes no RM address.
const EnvSchedulerAddress = "TIDEWATCH_RM_SCHEDULER_ADDRESS"

// DefaultSchedulerPort is YarnConfiguration.DEFAULT_RM_SCHEDULER_PORT.
const DefaultSchedulerPort = "8030"

// ErrNoSchedulerAddress reports that neither the environment nor a
// yarn-site.xml names the scheduler.
var ErrNoSchedulerAddress = errors.New("amrm: no scheduler address: set " + EnvSchedulerAddress + " or HADOOP_CONF_DIR")

// ErrBadConf reports an unreadable Hadoop configuration file.
var ErrBadConf = errors.New("amrm: malformed Hadoop configuration")

// SchedulerAddresses resolves the RM scheduler address(es) (§2.4): from
// EnvSchedulerAddress if set, otherwise from $HADOOP_CONF_DIR/yarn-site.xml
// with Hadoop's defaults, ${var} substitution and RM HA (one address per
// id in yarn.resourcemanager.ha.rm-ids, in order). getenv and readFile are
// os.Getenv and os.ReadFile in production.
func SchedulerAddresses(getenv func(string) string, readFile func(string) ([]byte, error)) ([]string, error) {
	if v := getenv(EnvSchedulerAddress); v != "" {
		var out []string
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				out = append(out, a)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	dir := getenv("HADOOP_CONF_DIR")
	if dir == "" {
		return nil, ErrNoSchedulerAddress
	}
	path := filepath.Join(dir, "yarn-site.xml")
	b, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("amrm: %s: %w", path, err)
	}
	conf, err := ParseHadoopConf(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	conf.getenv = getenv
	return conf.schedulerAddresses(), nil
}

// HadoopConf is a parsed Hadoop configuration file (*-site.xml).
type HadoopConf struct {
	props  map[string]string
	getenv func(string) string
}

// ParseHadoopConf parses <configuration><property><name/><value/></property>…
func ParseHadoopConf(b []byte) (*HadoopConf, error) {
	var doc struct {
		XMLName    xml.Name `xml:"configuration"`
		Properties []struct {
			Name  string `xml:"name"`
			Value string `xml:"value"`
		} `xml:"property"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadConf, err)
	}
	c := &HadoopConf{props: map[string]string{}}
	for _, p := range doc.Properties {
		if n := strings.TrimSpace(p.Name); n != "" {
			c.props[n] = strings.TrimSpace(p.Value)
		}
	}
	return c, nil
}

// maxSubst is Hadoop's Configuration.MAX_SUBST.
const maxSubst = 20

// Get returns a property with ${name} and ${env.NAME} references expanded,
// like Configuration.get; unresolvable references are left as they are.
func (c *HadoopConf) Get(key string) (string, bool) {
	v, ok := c.props[key]
	if !ok {
		return "", false
	}
	return c.expand(v), true
}

func (c *HadoopConf) expand(v string) string {
	for i := 0; i < maxSubst; i++ {
		start := strings.Index(v, "${")
		if start < 0 {
			return v
		}
		end := strings.Index(v[start:], "}")
		if end < 0 {
			return v
		}
		end += start
		name := v[start+2 : end]
		var repl string
		var found bool
		if env, ok := strings.CutPrefix(name, "env."); ok && c.getenv != nil {
			repl = c.getenv(env)
			found = repl != ""
		} else {
			repl, found = c.props[name]
			if !found {
				repl, found = yarnDefaults[name]
			}
		}
		if !found {
			return v
		}
		v = v[:start] + repl + v[end+1:]
	}
	return v
}

var yarnDefaults = map[string]string{
	"yarn.resourcemanager.hostname":          "0.0.0.0",
	"yarn.resourcemanager.scheduler.address": "${yarn.resourcemanager.hostname}:" + DefaultSchedulerPort,
}

func (c *HadoopConf) getOr(key string) string {
	if v, ok := c.Get(key); ok && v != "" {
		return v
	}
	return c.expand(yarnDefaults[key])
}

func (c *HadoopConf) schedulerAddresses() []string {
	if v, _ := c.Get("yarn.resourcemanager.ha.enabled"); strings.EqualFold(v, "true") {
		ids, _ := c.Get("yarn.resourcemanager.ha.rm-ids")
		var out []string
		for _, id := range strings.Split(ids, ",") {
			if id = strings.TrimSpace(id); id == "" {
				continue
			}
			if a, ok := c.Get("yarn.resourcemanager.scheduler.address." + id); ok && a != "" {
				out = append(out, a)
			} else if h, ok := c.Get("yarn.resourcemanager.hostname." + id); ok && h != "" {
				out = append(out, h+":"+DefaultSchedulerPort)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return []string{c.getOr("yarn.resourcemanager.scheduler.address")}
}
