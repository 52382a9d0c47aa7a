package local

import (
	"errors"
	"fmt"
	"path/filepath"
)

// Config configures the local-process deployer.
type Config struct {
	// Binary is the tidewatch executable started as `tidewatch am`.
	Binary string
	// JobsDir holds one directory per job: the spec, the job's working directory
	// (relative sink paths resolve there) and one directory per deployment with
	// its log and the job master's address file.
	JobsDir string
	// ListenHost is the interface the job masters bind to, on an ephemeral port.
	ListenHost string
	// LogFormat is passed to the job masters: "text" or "json".
	LogFormat string
}

// Validate reports the first field that cannot work.
func (c Config) Validate() error {
	if c.Binary == "" {
		return errors.New("local: binary must be set")
	}
	if c.JobsDir == "" {
		return errors.New("local: jobs_dir must be set")
	}
	if !filepath.IsAbs(c.JobsDir) {
		return fmt.Errorf("local: jobs_dir must be absolute, got %q", c.JobsDir)
	}
	if c.ListenHost == "" {
		return errors.New("local: listen_host must be set")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("local: log_format must be text or json, got %q", c.LogFormat)
	}
	return nil
}
