package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/tidewatch/tidewatch/supportlayer"
)

func newDaemonCommand() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the support layer: REST API, metadata store, watcher and deployer",
		Long: `Run the support layer.

With no configuration at all it runs the embedded default: SQLite in the data
directory, jobs as local processes, checkpoints in a local directory. Settings
come from the defaults, then the --config file, then TIDEWATCH_* environment
variables, then the flags given here.`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML config file (see configs/tidewatch.yaml)")
	listen := f.String("listen", "", "REST API address (key listen)")
	dataDir := f.String("data-dir", "", "directory for the database, job directories and checkpoints (key data_dir)")
	logLevel := f.String("log-level", "", "trace, debug, info, warn or error (key log.level)")
	logFormat := f.String("log-format", "", "text or json (key log.format)")
	interval := f.Duration("watch-interval", 0, "time between two watch cycles (key watch.interval)")

	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		opts, err := supportlayer.LoadOptions(configPath, os.Environ())
		if err != nil {
			return err
		}
		if f.Changed("listen") {
			opts.Listen = *listen
		}
		if f.Changed("data-dir") {
			opts.DataDir = *dataDir
		}
		if f.Changed("log-level") {
			opts.Log.Level = *logLevel
		}
		if f.Changed("log-format") {
			opts.Log.Format = *logFormat
		}
		if f.Changed("watch-interval") {
			opts.Watch.Interval = *interval
		}
		if err := opts.Validate(); err != nil {
			return err
		}
		logger, err := newLogger(opts.Log.Level, opts.Log.Format)
		if err != nil {
			return err
		}
		return supportlayer.Run(cmd.Context(), opts, logger.WithField("component", "daemon"))
	}
	return cmd
}
