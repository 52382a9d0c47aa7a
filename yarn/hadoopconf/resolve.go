package hadoopconf

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// ResourceManager is one RM of the cluster as the configuration describes it.
type ResourceManager struct {
	ID               string // HA id ("" without HA)
	WebURL           string // scheme://host:port of the web service, per yarn.http.policy
	SchedulerAddress string // host:port of ApplicationMasterProtocol
}

// HTTPS reports whether yarn.http.policy asks for HTTPS.
func (c *Config) HTTPS() (bool, error) {
	switch p := strings.ToUpper(c.Trimmed("yarn.http.policy")); p {
	case "HTTP_ONLY", "":
		return false, nil
	case "HTTPS_ONLY":
		return true, nil
	default:
		return false, fmt.Errorf("%w: yarn.http.policy = %q (want HTTP_ONLY or HTTPS_ONLY)", ErrInvalid, p)
	}
}

// ResourceManagers resolves every RM: with yarn.resourcemanager.ha.enabled,
// one per id in yarn.resourcemanager.ha.rm-ids, using the per-id keys
// (yarn.resourcemanager.webapp[.https].address.<id>, else
// yarn.resourcemanager.hostname.<id> with the default port); otherwise the
// single RM from yarn.resourcemanager.webapp[.https].address. A wildcard
// host (0.0.0.0, the default hostname) becomes localhost, as Hadoop's
// getConnectAddress does.
func (c *Config) ResourceManagers() ([]ResourceManager, error) {
	https, err := c.HTTPS()
	if err != nil {
		return nil, err
	}
	scheme, webKey, webPort := "http", "yarn.resourcemanager.webapp.address", 8088
	if https {
		scheme, webKey, webPort = "https", "yarn.resourcemanager.webapp.https.address", 8090
	}
	ha, err := c.Bool("yarn.resourcemanager.ha.enabled", false)
	if err != nil {
		return nil, err
	}
	if !ha {
		web, err := c.address(webKey, webPort)
		if err != nil {
			return nil, err
		}
		sched, err := c.address("yarn.resourcemanager.scheduler.address", 8030)
		if err != nil {
			return nil, err
		}
		return []ResourceManager{{WebURL: scheme + "://" + web, SchedulerAddress: sched}}, nil
	}
	ids := c.Strings("yarn.resourcemanager.ha.rm-ids")
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: yarn.resourcemanager.ha.rm-ids (HA is enabled)", ErrMissing)
	}
	var out []ResourceManager
	for _, id := range ids {
		web, err := c.haAddress(webKey, id, webPort)
		if err != nil {
			return nil, err
		}
		sched, err := c.haAddress("yarn.resourcemanager.scheduler.address", id, 8030)
		if err != nil {
			return nil, err
		}
		out = append(out, ResourceManager{ID: id, WebURL: scheme + "://" + web, SchedulerAddress: sched})
	}
	return out, nil
}

// RMWebURLs returns the web base URLs of every RM, for rm.Options.BaseURLs.
func (c *Config) RMWebURLs() ([]string, error) {
	rms, err := c.ResourceManagers()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(rms))
	for i, r := range rms {
		out[i] = r.WebURL
	}
	return out, nil
}

// RMSchedulerAddresses returns host:port of every RM's scheduler (AMRM)
// service (§2.4).
func (c *Config) RMSchedulerAddresses() ([]string, error) {
	rms, err := c.ResourceManagers()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(rms))
	for i, r := range rms {
		out[i] = r.SchedulerAddress
	}
	return out, nil
}

// haAddress is HAUtil.getConfValueForRMInstance: <key>.<id>, else
// yarn.resourcemanager.hostname.<id>:<port>.
func (c *Config) haAddress(key, id string, port int) (string, error) {
	if v := c.Trimmed(key + "." + id); v != "" {
		return normalizeAddress(key+"."+id, v, port)
	}
	if h := c.Trimmed("yarn.resourcemanager.hostname." + id); h != "" {
		return normalizeAddress("yarn.resourcemanager.hostname."+id, h, port)
	}
	return "", fmt.Errorf("%w: neither %s.%s nor yarn.resourcemanager.hostname.%s is set", ErrMissing, key, id, id)
}

func (c *Config) address(key string, port int) (string, error) {
	v := c.Trimmed(key)
	if v == "" {
		return "", fmt.Errorf("%w: %s", ErrMissing, key)
	}
	return normalizeAddress(key, v, port)
}

// normalizeAddress checks host[:port], adds the default port and replaces a
// wildcard host.
func normalizeAddress(key, v string, defPort int) (string, error) {
	if strings.Contains(v, "${") {
		return "", fmt.Errorf("%w: %s = %q has an unresolved variable", ErrInvalid, key, v)
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		host, port = v, strconv.Itoa(defPort)
	}
	if host == "" || strings.ContainsAny(host, "/?#@ ") {
		return "", fmt.Errorf("%w: %s = %q is not host[:port]", ErrInvalid, key, v)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("%w: %s = %q has a bad port", ErrInvalid, key, v)
	}
	if host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port), nil
}

// NameNodes is the default filesystem and the NameNodes serving it.
type NameNodes struct {
	DefaultFS   string   // fs.defaultFS, e.g. hdfs://nameservice1 or hdfs://nn:8020
	Nameservice string   // the logical name when fs.defaultFS names a nameservice
	Addresses   []string // host:port of every NameNode RPC endpoint
}

// NameNodes resolves fs.defaultFS (or the deprecated fs.default.name). If its
// host is a nameservice (listed in dfs.nameservices or having
// dfs.ha.namenodes.<ns>), the addresses come from
// dfs.namenode.rpc-address.<ns>.<nn-id> for each id in dfs.ha.namenodes.<ns>
// (or dfs.namenode.rpc-address.<ns> without HA); otherwise it is host:port
// with the default port 8020.
func (c *Config) NameNodes() (*NameNodes, error) {
	fs := c.Trimmed("fs.defaultFS")
	if c.Source("fs.defaultFS") == "default" {
		if old := c.Trimmed("fs.default.name"); old != "" {
			fs = old
		}
	}
	u, err := url.Parse(fs)
	if err != nil {
		return nil, fmt.Errorf("%w: fs.defaultFS = %q: %v", ErrInvalid, fs, err)
	}
	if u.Scheme != "hdfs" {
		return nil, fmt.Errorf("%w: fs.defaultFS = %q", ErrNotHDFS, fs)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: fs.defaultFS = %q names no host", ErrInvalid, fs)
	}
	nn := &NameNodes{DefaultFS: strings.TrimRight(fs, "/")}
	host := u.Hostname()
	isNS := false
	for _, ns := range c.Strings("dfs.nameservices") {
		isNS = isNS || ns == host
	}
	ids := c.Strings("dfs.ha.namenodes." + host)
	if u.Port() == "" && (isNS || len(ids) > 0) {
		nn.Nameservice = host
		if len(ids) == 0 {
			a, err := c.address("dfs.namenode.rpc-address."+host, 8020)
			if err != nil {
				return nil, err
			}
			nn.Addresses = []string{a}
			return nn, nil
		}
		for _, id := range ids {
			a, err := c.address("dfs.namenode.rpc-address."+host+"."+id, 8020)
			if err != nil {
				return nil, err
			}
			nn.Addresses = append(nn.Addresses, a)
		}
		return nn, nil
	}
	a, err := normalizeAddress("fs.defaultFS", u.Host, 8020)
	if err != nil {
		return nil, err
	}
	nn.Addresses = []string{a}
	return nn, nil
}
