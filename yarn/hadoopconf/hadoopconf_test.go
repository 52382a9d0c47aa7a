package hadoopconf

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func load(t *testing.T, dir string, overrides map[string]string, e map[string]string) *Config {
	t.Helper()
	c, err := Load(Options{Dir: filepath.Join("testdata", dir), Overrides: overrides, Getenv: env(e)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSimpleCluster(t *testing.T) {
	c := load(t, "simple", nil, map[string]string{"HADOOP_USER_NAME": "tw"})
	if len(c.Files) != 2 {
		t.Errorf("files read: %v (hdfs-site.xml is absent and skipped)", c.Files)
	}
	rms, err := c.ResourceManagers()
	if err != nil {
		t.Fatal(err)
	}
	want := []ResourceManager{{WebURL: "http://rm.example.com:8088", SchedulerAddress: "rm.example.com:8030"}}
	if fmt.Sprint(rms) != fmt.Sprint(want) {
		t.Errorf("rms %+v, want %+v", rms, want)
	}
	nn, err := c.NameNodes()
	if err != nil {
		t.Fatal(err)
	}
	if nn.Nameservice != "" || fmt.Sprint(nn.Addresses) != "[nn1.example.com:9000]" || nn.DefaultFS != "hdfs://nn1.example.com:9000" {
		t.Errorf("namenodes %+v", nn)
	}
	if got := c.Get("tidewatch.staging.dir"); got != "/user/tw/.tidewatch" {
		t.Errorf("env substitution: %q", got)
	}
	if u, _ := c.User(); u != "tw" {
		t.Errorf("user %q", u)
	}
	if c.Source("yarn.resourcemanager.hostname") != "yarn-site.xml" || c.Source("yarn.resourcemanager.webapp.address") != "default" {
		t.Errorf("sources %q %q", c.Source("yarn.resourcemanager.hostname"), c.Source("yarn.resourcemanager.webapp.address"))
	}
}

func TestHACluster(t *testing.T) {
	c := load(t, "ha", nil, nil)
	urls, err := c.RMWebURLs()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(urls) != "[https://rm1.prod:8090 https://rm2-web.prod:9443]" {
		t.Errorf("web urls %v", urls)
	}
	sched, err := c.RMSchedulerAddresses()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sched) != "[rm1.prod:18030 rm2.prod:8030]" {
		t.Errorf("scheduler %v", sched)
	}
	nn, err := c.NameNodes()
	if err != nil {
		t.Fatal(err)
	}
	if nn.Nameservice != "prodns" || fmt.Sprint(nn.Addresses) != "[nn1.prod:8020 nn2.prod:8020]" {
		t.Errorf("namenodes %+v", nn)
	}
}

func TestOverridesAndFinal(t *testing.T) {
	c := load(t, "final", nil, nil)
	if got := c.Get("fs.defaultFS"); got != "hdfs://locked:8020" {
		t.Errorf("final property overridden by a later file: %q", got)
	}
	if got := c.Get("a"); got != "from-hdfs" {
		t.Errorf("later file must win for non-final: %q", got)
	}
	if got := c.Get("loop"); !strings.Contains(got, "${loop}") {
		t.Errorf("self reference must stop after %d rounds: %q", maxSubst, got)
	}
	c = load(t, "final", map[string]string{"fs.defaultFS": "hdfs://explicit:8020"}, nil)
	if got := c.Get("fs.defaultFS"); got != "hdfs://explicit:8020" {
		t.Errorf("explicit override must win: %q", got)
	}
}

func TestDefaultsWithoutFiles(t *testing.T) {
	c, err := Load(Options{Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	urls, err := c.RMWebURLs()
	if err != nil || fmt.Sprint(urls) != "[http://localhost:8088]" {
		t.Errorf("default RM %v %v", urls, err)
	}
	if _, err := c.NameNodes(); !errors.Is(err, ErrNotHDFS) {
		t.Errorf("file:/// default FS: %v", err)
	}
	// HADOOP_CONF_DIR is used when Dir is empty.
	c, err = Load(Options{Getenv: env(map[string]string{"HADOOP_CONF_DIR": filepath.Join("testdata", "ha")})})
	if err != nil || len(c.Files) != 3 {
		t.Fatalf("HADOOP_CONF_DIR: %v %v", c, err)
	}
}

func TestErrors(t *testing.T) {
	_, err := Load(Options{Dir: filepath.Join("testdata", "bad"), Getenv: env(nil)})
	if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), "core-site.xml") {
		t.Errorf("bad xml: %v", err)
	}
	if _, err := Load(Options{Dir: filepath.Join("testdata", "nope"), Getenv: env(nil)}); !errors.Is(err, ErrNoConfig) {
		t.Errorf("missing dir: %v", err)
	}
	tests := []struct {
		props map[string]string
		call  func(*Config) error
		want  error
		field string
	}{
		{map[string]string{"yarn.resourcemanager.ha.enabled": "true"}, rmCall, ErrMissing, "yarn.resourcemanager.ha.rm-ids"},
		{map[string]string{"yarn.resourcemanager.ha.enabled": "true", "yarn.resourcemanager.ha.rm-ids": "rm1"}, rmCall, ErrMissing, "yarn.resourcemanager.hostname.rm1"},
		{map[string]string{"yarn.resourcemanager.ha.enabled": "yes"}, rmCall, ErrInvalid, "yarn.resourcemanager.ha.enabled"},
		{map[string]string{"yarn.http.policy": "HTTP_AND_HTTPS"}, rmCall, ErrInvalid, "yarn.http.policy"},
		{map[string]string{"yarn.resourcemanager.webapp.address": "rm:99999"}, rmCall, ErrInvalid, "yarn.resourcemanager.webapp.address"},
		{map[string]string{"yarn.resourcemanager.webapp.address": "${undefined.key}:8088"}, rmCall, ErrInvalid, "unresolved"},
		{map[string]string{"fs.defaultFS": "hdfs://ns", "dfs.nameservices": "ns", "dfs.ha.namenodes.ns": "a,b", "dfs.namenode.rpc-address.ns.a": "h:1"}, nnCall, ErrMissing, "dfs.namenode.rpc-address.ns.b"},
		{map[string]string{"fs.defaultFS": "s3a://bucket"}, nnCall, ErrNotHDFS, "s3a://bucket"},
	}
	for _, tt := range tests {
		err := tt.call(FromMap(tt.props))
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%v: %v, want %v naming %s", tt.props, err, tt.want, tt.field)
		}
	}
}

func rmCall(c *Config) error { _, err := c.ResourceManagers(); return err }
func nnCall(c *Config) error { _, err := c.NameNodes(); return err }

func TestSubstitution(t *testing.T) {
	c, _ := Load(Options{
		Overrides: map[string]string{"a": "${b}/${c}", "b": "B", "c": "${d}", "d": "D", "e": "${env.NOPE:-fallback}", "f": "${env.HOME}", "g": "${missing}"},
		Getenv:    env(map[string]string{"HOME": "/home/x"}),
	})
	for k, want := range map[string]string{"a": "B/D", "e": "fallback", "f": "/home/x", "g": "${missing}"} {
		if got := c.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestParseIgnoresOtherElements(t *testing.T) {
	props, err := Parse(strings.NewReader(`<?xml version="1.0"?><configuration><other/><property><name>k</name><value> v </value><final>TRUE</final><source>x</source></property></configuration>`))
	if err != nil || len(props) != 1 || props[0] != (Property{Name: "k", Value: " v ", Final: true}) {
		t.Errorf("%+v %v", props, err)
	}
	for _, bad := range []string{"", "<conf/>", "<configuration><property>", `<configuration><xi:include href="x.xml"/></configuration>`} {
		if _, err := Parse(strings.NewReader(bad)); !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"simple/core-site.xml", "ha/hdfs-site.xml", "ha/yarn-site.xml", "final/hdfs-site.xml"} {
		if b, err := readFile(filepath.Join("testdata", p)); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`<configuration><property><name>a</name><value>${a}${b}</value></property></configuration>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		props, err := Parse(strings.NewReader(string(b)))
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error without ErrSyntax: %v", err)
			}
			return
		}
		m := map[string]string{}
		for _, p := range props {
			if p.Name == "" {
				t.Fatal("nameless property returned")
			}
			m[p.Name] = p.Value
		}
		c := FromMap(m)
		for k := range m {
			_ = c.Get(k)
		}
		_, _ = c.ResourceManagers()
		_, _ = c.NameNodes()
	})
}

func TestSubstitutionGrowthIsBounded(t *testing.T) {
	c := FromMap(map[string]string{"a": "${a}${a}${a}${a}"})
	if got := c.Get("a"); len(got) > 2*maxValueLen {
		t.Errorf("value grew to %d bytes", len(got))
	}
}
