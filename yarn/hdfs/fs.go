// Package hdfs stages what a Tidewatch application master needs — the
// runtime binary, the job spec and user files — on the cluster filesystem,
// and describes each staged file as a YARN local resource whose size and
// modification time are read back from the filesystem (the NodeManager
// compares the timestamp exactly, HADOOP_PROTOCOLS.md §1.3.2).
//
// Layout under the staging directory:
//
//	<staging>/.tidewatch/bin/<sha256>/<name>   runtime binary, reused while its hash is unchanged
//	<staging>/<application-id>/<link>          job spec and user files of one application
//
// Files are written under a temporary name and renamed into place. A staged
// binary is never replaced: applications were submitted with its
// modification time, and the NodeManager refuses to localize a file whose
// time changed. So when deployments upload the same binary at once, the
// first rename wins (FileSystem.RenameNoReplace) and the others use its file.
//
// Directories are created 0700 and files 0600: the NodeManager localizes
// PRIVATE and APPLICATION resources as the submitting user, who owns them.
// The filesystem is behind FileSystem: HDFS (github.com/colinmarc/hdfs/v2)
// in production, a local directory in tests.
package hdfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	chdfs "github.com/colinmarc/hdfs/v2"

	"github.com/tidewatch/tidewatch/yarn/hadoopconf"
)

// Sentinel errors.
var (
	ErrInvalidOptions = errors.New("hdfs: invalid options")
	ErrInvalidRequest = errors.New("hdfs: invalid staging request")
	ErrChanged        = errors.New("hdfs: resource changed on src filesystem")
	ErrNotPublic      = errors.New("hdfs: resource is not publicly accessible")
	ErrConflict       = errors.New("hdfs: something else is where a staged file belongs")
)

// FileSystem is what the Stager needs from a filesystem. Paths are absolute,
// slash-separated paths of that filesystem.
type FileSystem interface {
	MkdirAll(p string, perm fs.FileMode) error
	// Create creates (or fails if it exists) a file to write.
	Create(p string, perm fs.FileMode) (io.WriteCloser, error)
	// Rename moves oldpath to newpath, replacing a file at newpath.
	Rename(oldpath, newpath string) error
	// RenameNoReplace moves oldpath to newpath atomically unless newpath
	// exists; then it fails with an error satisfying
	// errors.Is(err, fs.ErrExist) and leaves both paths as they were.
	RenameNoReplace(oldpath, newpath string) error
	Chmod(p string, perm fs.FileMode) error
	// Stat reports size, permissions and modification time; the error
	// satisfies errors.Is(err, fs.ErrNotExist) for a missing path.
	Stat(p string) (fs.FileInfo, error)
	// RemoveAll removes p and its children; a missing p is not an error.
	RemoveAll(p string) error
	// URL is the fully qualified URL of p, as the NodeManager will open it.
	URL(p string) string
}

// LocalFS is a FileSystem in a local directory: the filesystem path /a/b
// is Root/a/b, and URLs are file:// URLs. A NodeManager on the same host can
// localize from it, which is how tests and single-host setups use it.
type LocalFS struct {
	Root string
}

var _ FileSystem = (*LocalFS)(nil)

func (l *LocalFS) local(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%w: path %q is not absolute", ErrInvalidRequest, p)
	}
	return filepath.Join(l.Root, filepath.FromSlash(path.Clean(p))), nil
}

func (l *LocalFS) MkdirAll(p string, perm fs.FileMode) error {
	lp, err := l.local(p)
	if err != nil {
		return err
	}
	return os.MkdirAll(lp, perm)
}

func (l *LocalFS) Create(p string, perm fs.FileMode) (io.WriteCloser, error) {
	lp, err := l.local(p)
	if err != nil {
		return nil, err
	}
	return os.OpenFile(lp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
}

func (l *LocalFS) Rename(oldpath, newpath string) error {
	o, err := l.local(oldpath)
	if err != nil {
		return err
	}
	n, err := l.local(newpath)
	if err != nil {
		return err
	}
	return os.Rename(o, n)
}

// RenameNoReplace links newpath to oldpath's file, which fails if newpath
// exists, and then removes oldpath. The file keeps its modification time.
func (l *LocalFS) RenameNoReplace(oldpath, newpath string) error {
	o, err := l.local(oldpath)
	if err != nil {
		return err
	}
	n, err := l.local(newpath)
	if err != nil {
		return err
	}
	if err := os.Link(o, n); err != nil {
		return err
	}
	return os.Remove(o)
}

func (l *LocalFS) Chmod(p string, perm fs.FileMode) error {
	lp, err := l.local(p)
	if err != nil {
		return err
	}
	return os.Chmod(lp, perm)
}

func (l *LocalFS) Stat(p string) (fs.FileInfo, error) {
	lp, err := l.local(p)
	if err != nil {
		return nil, err
	}
	return os.Stat(lp)
}

func (l *LocalFS) RemoveAll(p string) error {
	lp, err := l.local(p)
	if err != nil {
		return err
	}
	return os.RemoveAll(lp)
}

func (l *LocalFS) URL(p string) string {
	lp, _ := l.local(p)
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(lp)}).String()
}

// HDFS is a FileSystem on HDFS.
type HDFS struct {
	client    *chdfs.Client
	nn        *nameNodeRPC // the calls client lacks (RenameNoReplace)
	defaultFS string       // hdfs://host:port or hdfs://nameservice
}

var _ FileSystem = (*HDFS)(nil)

// HDFSOptions say how to reach HDFS. Zero fields are taken from Conf.
type HDFSOptions struct {
	// Conf supplies fs.defaultFS, the NameNode addresses (HA nameservices
	// resolved) and the user (HADOOP_USER_NAME).
	Conf *hadoopconf.Config
	// Addresses override the NameNode RPC addresses (host:port).
	Addresses []string
	// DefaultFS overrides the URL prefix of staged files
	// (default: fs.defaultFS, or hdfs://<first address>).
	DefaultFS string
	// User overrides the Hadoop user.
	User string
	// UseDatanodeHostname connects to DataNodes by host name.
	UseDatanodeHostname bool
}

// NewHDFS connects to the NameNode(s).
func NewHDFS(o HDFSOptions) (*HDFS, error) {
	if o.Conf != nil {
		if len(o.Addresses) == 0 || o.DefaultFS == "" {
			nn, err := o.Conf.NameNodes()
			if err != nil {
				return nil, err
			}
			if len(o.Addresses) == 0 {
				o.Addresses = nn.Addresses
			}
			if o.DefaultFS == "" {
				o.DefaultFS = nn.DefaultFS
			}
		}
		if o.User == "" {
			u, err := o.Conf.User()
			if err != nil {
				return nil, err
			}
			o.User = u
		}
		if strings.EqualFold(o.Conf.Trimmed("hadoop.security.authentication"), "kerberos") {
			return nil, fmt.Errorf("%w: hadoop.security.authentication=kerberos is not supported", ErrInvalidOptions)
		}
		if v, err := o.Conf.Bool("dfs.client.use.datanode.hostname", false); err == nil && v {
			o.UseDatanodeHostname = true
		}
	}
	if len(o.Addresses) == 0 {
		return nil, fmt.Errorf("%w: Addresses: no NameNode address", ErrInvalidOptions)
	}
	if o.User == "" {
		return nil, fmt.Errorf("%w: User: no Hadoop user", ErrInvalidOptions)
	}
	if o.DefaultFS == "" {
		o.DefaultFS = "hdfs://" + o.Addresses[0]
	}
	c, err := chdfs.NewClient(chdfs.ClientOptions{Addresses: o.Addresses, User: o.User, UseDatanodeHostname: o.UseDatanodeHostname})
	if err != nil {
		return nil, fmt.Errorf("hdfs: connect to %v as %s: %w", o.Addresses, o.User, err)
	}
	return &HDFS{client: c, nn: &nameNodeRPC{addrs: o.Addresses, user: o.User}, defaultFS: strings.TrimRight(o.DefaultFS, "/")}, nil
}

// Close closes the connection to the NameNode.
func (h *HDFS) Close() error { return h.client.Close() }

func (h *HDFS) MkdirAll(p string, perm fs.FileMode) error { return h.client.MkdirAll(p, perm) }

func (h *HDFS) Create(p string, perm fs.FileMode) (io.WriteCloser, error) {
	d, err := h.client.ServerDefaults()
	if err != nil {
		return nil, fmt.Errorf("hdfs: server defaults: %w", err)
	}
	w, err := h.client.CreateFile(p, d.Replication, d.BlockSize, perm)
	if err != nil {
		return nil, err
	}
	return completingWriter{w}, nil
}

// completingWriter closes with CloseFile.
type completingWriter struct{ *chdfs.FileWriter }

func (w completingWriter) Close() error { return CloseFile(w.FileWriter) }

// CloseFile closes w, retrying (for up to about 13 s) while the NameNode
// answers that the file's last block has not yet reached its minimum
// replication (ErrReplicating): the datanodes have the data by then,
// and a file must be complete before it is renamed into place or handed
// to a NodeManager. The Java client retries the same way.
func CloseFile(w *chdfs.FileWriter) error {
	err := w.Close()
	for wait := 100 * time.Millisecond; errors.Is(err, chdfs.ErrReplicating) && wait <= 6400*time.Millisecond; wait *= 2 {
		time.Sleep(wait)
		err = w.Close()
	}
	return err
}

func (h *HDFS) Rename(oldpath, newpath string) error   { return h.client.Rename(oldpath, newpath) }
func (h *HDFS) Chmod(p string, perm fs.FileMode) error { return h.client.Chmod(p, perm) }
func (h *HDFS) Stat(p string) (fs.FileInfo, error)     { return h.client.Stat(p) }
func (h *HDFS) RemoveAll(p string) error               { return h.client.RemoveAll(p) }
func (h *HDFS) URL(p string) string                    { return h.defaultFS + p }

// modTimeMS is the modification time as the NodeManager compares it.
func modTimeMS(fi fs.FileInfo) int64 { return fi.ModTime().UnixMilli() }
