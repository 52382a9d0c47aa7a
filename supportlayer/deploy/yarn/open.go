package yarn

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/yarn/hadoopconf"
	"github.com/tidewatch/tidewatch/yarn/hdfs"
	"github.com/tidewatch/tidewatch/yarn/rm"
)

// Open builds a deployer for the cluster cfg describes: what cfg leaves
// empty comes from the Hadoop client configuration (HADOOP_CONF_DIR) — the
// RM web addresses (with RM HA) from yarn-site.xml, the RM scheduler
// addresses passed to the AM from yarn-site.xml too, the NameNodes from
// fs.defaultFS and hdfs-site.xml, the user from HADOOP_USER_NAME or the
// operating system. fsys, when not nil, replaces the HDFS connection (tests
// stage to a hdfs.LocalFS).
func Open(cfg Config, fsys hdfs.FileSystem, log *logrus.Entry) (*Deployer, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conf, err := hadoopconf.Load(hadoopconf.Options{Dir: cfg.HadoopConfDir, User: cfg.User})
	if err != nil {
		return nil, fmt.Errorf("HADOOP_CONF_DIR: %w", err)
	}
	if cfg.User, err = conf.User(); err != nil {
		return nil, fmt.Errorf("hdfs.user: not set, and %w", err)
	}
	if len(cfg.ResourceManagers) == 0 {
		if !readYarnSite(conf) {
			return nil, errors.New("yarn.resourcemanager: not set, and HADOOP_CONF_DIR names no yarn-site.xml to take the ResourceManager addresses from")
		}
		if cfg.ResourceManagers, err = conf.RMWebURLs(); err != nil {
			return nil, fmt.Errorf("yarn.resourcemanager: not set, and yarn-site.xml: %w", err)
		}
	}
	if len(cfg.SchedulerAddresses) == 0 && readYarnSite(conf) {
		// Otherwise the AM reads its NodeManager's yarn-site.xml, which
		// often leaves yarn.resourcemanager.hostname unset: 0.0.0.0:8030.
		if cfg.SchedulerAddresses, err = conf.RMSchedulerAddresses(); err != nil {
			log.WithError(err).Warn("yarn.scheduler_address: not set, and not found in yarn-site.xml; the AM will look in its NodeManager's yarn-site.xml")
		}
	}
	client, err := rm.New(rm.Options{
		BaseURLs:       cfg.ResourceManagers,
		User:           cfg.User,
		RequestTimeout: cfg.RMRequestTimeout,
		MaxRetries:     cfg.RMMaxRetries,
		Log:            log.WithField("component", "rm-client"),
	})
	if err != nil {
		return nil, fmt.Errorf("yarn.resourcemanager: %w", err)
	}

	var closer io.Closer
	if fsys == nil {
		o := hdfs.HDFSOptions{Conf: conf, User: cfg.User}
		if cfg.NameNode != "" {
			o.Addresses, o.DefaultFS = []string{cfg.NameNode}, "hdfs://"+cfg.NameNode
		}
		h, err := hdfs.NewHDFS(o)
		if err != nil {
			if cfg.NameNode == "" {
				return nil, fmt.Errorf("hdfs.namenode: not set, and from HADOOP_CONF_DIR: %w", err)
			}
			return nil, fmt.Errorf("hdfs.namenode: %w", err)
		}
		fsys, closer = h, h
	}
	staging := cfg.StagingDir
	if staging == "" {
		staging = hdfs.DefaultStagingDir(cfg.User)
	}
	stager, err := hdfs.NewStager(fsys, hdfs.Options{StagingDir: staging, Log: log})
	if err != nil {
		closeQuietly(closer)
		return nil, fmt.Errorf("yarn.staging_dir: %w", err)
	}
	d, err := New(cfg, client, stager, log)
	if err != nil {
		closeQuietly(closer)
		return nil, err
	}
	d.closer = closer
	d.log.WithFields(logrus.Fields{"resourcemanagers": cfg.ResourceManagers, "user": cfg.User, "staging": fsys.URL(staging), "queue": cfg.Queue}).Info("YARN deployer ready")
	return d, nil
}

func readYarnSite(conf *hadoopconf.Config) bool {
	for _, f := range conf.Files {
		if filepath.Base(f) == "yarn-site.xml" {
			return true
		}
	}
	return false
}

func closeQuietly(c io.Closer) {
	if c != nil {
		_ = c.Close()
	}
}
