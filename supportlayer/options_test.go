package supportlayer

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadOptionsGood(t *testing.T) {
	o, err := LoadOptions("testdata/configs/good.yaml", []string{"TIDEWATCH_WATCH_INTERVAL=750ms", "TIDEWATCH_TOKEN=s3cret", "HOME=/root"})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.Listen != "127.0.0.1:9090" || o.DataDir != "/tmp/tw" || o.Log.Level != "debug" || o.Log.Format != "json" {
		t.Errorf("file values not applied: %+v", o)
	}
	if o.Watch.Interval != 750*time.Millisecond {
		t.Errorf("env must override the file: interval = %s", o.Watch.Interval)
	}
	if o.Auth.Token != "s3cret" {
		t.Errorf("TIDEWATCH_TOKEN not applied")
	}
	if o.Restart.Strategy != "fixed" || o.Restart.Delay != 3*time.Second || o.Restart.MaxRestarts != 5 {
		t.Errorf("restart = %+v", o.Restart)
	}
	// Keys the file did not set keep their defaults.
	if o.Watch.StopTimeout != DefaultOptions().Watch.StopTimeout || o.Restart.Window != DefaultOptions().Restart.Window {
		t.Errorf("defaults lost: %+v", o)
	}
}

func TestDefaultOptionsValid(t *testing.T) {
	if err := DefaultOptions().Validate(); err != nil {
		t.Fatal(err)
	}
	o, err := LoadOptions("", nil)
	if err != nil || !reflect.DeepEqual(o, DefaultOptions()) {
		t.Fatalf("no file and no env must give the defaults: %v", err)
	}
}

func TestLoadOptionsBad(t *testing.T) {
	f, err := os.Open("testdata/configs/bad/expected.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, want, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			t.Fatalf("bad line in expected.txt: %q", sc.Text())
		}
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			o, err := LoadOptions(filepath.Join("testdata/configs/bad", name), nil)
			if err == nil {
				err = o.Validate()
			}
			if err == nil {
				t.Fatalf("no error, want %q", want)
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not contain %q", err, want)
			}
		})
	}
	files, _ := filepath.Glob("testdata/configs/bad/*.yaml")
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s has no expected error in expected.txt", f)
		}
	}
}

func TestEnvErrorsNameTheVariable(t *testing.T) {
	tests := []struct{ env, want string }{
		{"TIDEWATCH_WATCH_INTERVAL=often", "TIDEWATCH_WATCH_INTERVAL (watch.interval): \"often\" is not a duration"},
		{"TIDEWATCH_RESTART_MAX_RESTARTS=x", "TIDEWATCH_RESTART_MAX_RESTARTS (restart.max_restarts): \"x\" is not an integer"},
	}
	for _, tt := range tests {
		_, err := LoadOptions("", []string{tt.env})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.env, err, tt.want)
		}
	}
}

func TestEnvKeysCoverEveryKey(t *testing.T) {
	keys := EnvKeys()
	for _, k := range []string{"listen", "data_dir", "log.format", "database.dsn", "auth.token", "watch.interval", "restart.max_restarts"} {
		if keys[k] == "" {
			t.Errorf("no environment variable for %s", k)
		}
	}
	if keys["watch.interval"] != "TIDEWATCH_WATCH_INTERVAL" {
		t.Errorf("watch.interval → %s", keys["watch.interval"])
	}
}

// The example config in configs/ documents every key with its default.
func TestExampleConfigIsTheDefault(t *testing.T) {
	o, err := LoadOptions("../configs/tidewatch.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o, DefaultOptions()) {
		t.Fatalf("configs/tidewatch.yaml differs from DefaultOptions():\n%+v\n%+v", o, DefaultOptions())
	}
	data, _ := os.ReadFile("../configs/tidewatch.yaml")
	for key := range EnvKeys() {
		last := key[strings.LastIndex(key, ".")+1:]
		if !strings.Contains(string(data), last+":") {
			t.Errorf("configs/tidewatch.yaml does not show %s", key)
		}
	}
}

func TestLoadOptionsYarn(t *testing.T) {
	o, err := LoadOptions("testdata/configs/yarn.yaml", []string{"TIDEWATCH_YARN_SCHEDULER_ADDRESS=rm3.example.com:8030, rm4.example.com:8030", "TIDEWATCH_YARN_STAGING_DIR=/tmp/staging"})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	c := o.yarnConfig()
	if c.Queue != "streaming" || c.MaxAttempts != 3 || c.AttemptFailuresValidityInterval != 10*time.Minute ||
		c.NameNode != "nn.example.com:8020" || c.User != "tidewatch" || c.StagingDir != "/tmp/staging" ||
		!reflect.DeepEqual(c.ResourceManagers, []string{"http://rm1.example.com:8088", "http://rm2.example.com:8088"}) {
		t.Errorf("yarn config = %+v", c)
	}
	if !reflect.DeepEqual(c.SchedulerAddresses, []string{"rm3.example.com:8030", "rm4.example.com:8030"}) {
		t.Errorf("a list from the environment is comma-separated: %q", c.SchedulerAddresses)
	}
	if c.ObserveInterval != o.Watch.Interval {
		t.Errorf("the application listing must live one watch interval, got %s", c.ObserveInterval)
	}

	// A one-node test cluster may share a local directory, named explicitly.
	o.Checkpoints.Dir = "file:///var/tidewatch/checkpoints"
	if err := o.Validate(); err != nil {
		t.Errorf("file:// checkpoints with deployer yarn: %v", err)
	}
	// The local deployer keeps taking local paths.
	o.Deployer, o.Checkpoints.Dir = "local", "/var/tidewatch/checkpoints"
	if err := o.Validate(); err != nil {
		t.Errorf("local path with deployer local: %v", err)
	}
	if keys := EnvKeys(); keys["yarn.resourcemanager"] != "TIDEWATCH_YARN_RESOURCEMANAGER" || keys["hdfs.namenode"] != "TIDEWATCH_HDFS_NAMENODE" {
		t.Errorf("yarn and hdfs keys lack environment variables")
	}
}
