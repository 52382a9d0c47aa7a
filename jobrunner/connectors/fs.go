package connectors

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/colinmarc/hdfs/v2"

	"github.com/tidewatch/tidewatch/yarn/hadoopconf"
	yarnhdfs "github.com/tidewatch/tidewatch/yarn/hdfs"
)

// FS is the little of a file system the file source, the file sink and the
// job master's checkpoint storage need. Paths are slash-separated for HDFS and
// native for the local file system.
type FS interface {
	Open(name string) (ReadFile, error)
	// Create creates or truncates name for writing.
	Create(name string) (WriteFile, error)
	// CreateExclusive creates name for writing and fails, with an error
	// satisfying errors.Is(err, fs.ErrExist), if it exists. The test and the
	// creation are one atomic step of the file system (O_EXCL locally, the
	// namenode's create without overwrite on HDFS), so of several callers
	// exactly one succeeds.
	CreateExclusive(name string) (WriteFile, error)
	// Rename replaces newname with oldname atomically and durably.
	Rename(oldname, newname string) error
	Remove(name string) error
	// RemoveAll removes name and everything under it; a missing name is not
	// an error.
	RemoveAll(name string) error
	Stat(name string) (fs.FileInfo, error)
	// ReadDir lists a directory sorted by name.
	ReadDir(name string) ([]fs.FileInfo, error)
	// MkdirAll creates a directory and its missing parents, durably.
	MkdirAll(name string) error
	// Join and Split handle the file system's path syntax.
	Join(elem ...string) string
	Split(name string) (dir, file string)
	// URL names a path so that OpenFS finds it again: the path itself on
	// the local file system, hdfs://authority/path on HDFS.
	URL(name string) string
	Close() error
}

// ReadFile is an open file being read.
type ReadFile interface {
	io.ReadSeekCloser
}

// WriteFile is an open file being written. Sync makes what was written so far
// durable; on HDFS it flushes to the datanodes, and Close completes the file
// once every datanode of the pipeline has acknowledged every packet.
type WriteFile interface {
	io.WriteCloser
	Sync() error
}

var (
	_ FS = localFS{}
	_ FS = (*hdfsFS)(nil)
)

// OpenFS returns the file system a path lives on and the path within it:
//
//   - hdfs://host:port/dir/file is on HDFS, served by that namenode;
//   - hdfs://nameservice/dir/file is on HDFS, served by the namenodes that
//     hdfs-site.xml in HADOOP_CONF_DIR lists for the nameservice (a host
//     without a port that is no nameservice gets port 8020);
//   - hdfs:///dir/file is on the HDFS that fs.defaultFS in core-site.xml
//     names;
//   - file:///dir/file and every other path are local.
//
// HDFS is reached with simple authentication as the user in HADOOP_USER_NAME,
// or else the current user; a configuration that asks for Kerberos is an
// error.
func OpenFS(p string) (FS, string, error) {
	if strings.HasPrefix(p, "file://") {
		u, err := url.Parse(p)
		if err != nil || (u.Host != "" && u.Host != "localhost") || u.Path == "" {
			return nil, "", fmt.Errorf("connectors: bad file URL %q (want file:///path)", p)
		}
		return localFS{}, filepath.FromSlash(u.Path), nil
	}
	if !strings.HasPrefix(p, "hdfs://") {
		return localFS{}, p, nil
	}
	u, err := url.Parse(p)
	if err != nil {
		return nil, "", fmt.Errorf("connectors: bad HDFS URL %q (want hdfs://namenode:port/path, hdfs://nameservice/path or hdfs:///path): %v", p, err)
	}
	t, err := resolveHDFS(u, os.Getenv)
	if err != nil {
		return nil, "", err
	}
	c, err := hdfs.NewClient(hdfs.ClientOptions{Addresses: t.addresses, User: t.user, UseDatanodeHostname: t.useDatanodeHostname})
	if err != nil {
		return nil, "", fmt.Errorf("connectors: %s: connect to namenode %s as %s: %w", p, strings.Join(t.addresses, ","), t.user, err)
	}
	name := u.Path
	if name == "" {
		name = "/"
	}
	return &hdfsFS{c: c, authority: t.authority}, name, nil
}

// hdfsTarget is how to reach the HDFS an hdfs:// URL names.
type hdfsTarget struct {
	authority           string   // host[:port] or nameservice, as URLs name it
	addresses           []string // namenode RPC addresses
	user                string
	useDatanodeHostname bool
}

// resolveHDFS reads the Hadoop client configuration (HADOOP_CONF_DIR, if set)
// and resolves u's authority, or fs.defaultFS for hdfs:///path.
func resolveHDFS(u *url.URL, getenv func(string) string) (*hdfsTarget, error) {
	opts := hadoopconf.Options{Getenv: getenv}
	if u.Host != "" {
		// NameNodes resolves fs.defaultFS; point it at this URL's authority.
		opts.Overrides = map[string]string{"fs.defaultFS": "hdfs://" + u.Host}
	}
	conf, err := hadoopconf.Load(opts)
	if err != nil {
		return nil, fmt.Errorf("connectors: %s: read the Hadoop configuration in HADOOP_CONF_DIR: %w", u, err)
	}
	if auth := conf.Trimmed("hadoop.security.authentication"); !strings.EqualFold(auth, "simple") {
		return nil, fmt.Errorf("connectors: %s: hadoop.security.authentication is %q; only simple authentication (HADOOP_USER_NAME) is supported", u, auth)
	}
	nn, err := conf.NameNodes()
	switch {
	case errors.Is(err, hadoopconf.ErrNotHDFS) && u.Host == "":
		return nil, fmt.Errorf("connectors: %s names the default file system, but fs.defaultFS is %q (set HADOOP_CONF_DIR to a directory whose core-site.xml sets fs.defaultFS to an hdfs:// URL, or name the namenode: hdfs://host:port/path): %w",
			u, conf.Trimmed("fs.defaultFS"), err)
	case err != nil:
		return nil, fmt.Errorf("connectors: %s: resolve namenodes: %w", u, err)
	}
	t := &hdfsTarget{authority: u.Host, addresses: nn.Addresses}
	if t.authority == "" {
		d, err := url.Parse(nn.DefaultFS)
		if err != nil || d.Host == "" {
			return nil, fmt.Errorf("connectors: %s: fs.defaultFS %q names no namenode", u, nn.DefaultFS)
		}
		t.authority = d.Host
	}
	if t.user, err = conf.User(); err != nil {
		return nil, fmt.Errorf("connectors: %s: %w", u, err)
	}
	if t.useDatanodeHostname, err = conf.Bool("dfs.client.use.datanode.hostname", false); err != nil {
		return nil, fmt.Errorf("connectors: %s: %w", u, err)
	}
	return t, nil
}

// localFS is the local file system.
type localFS struct{}

func (localFS) Open(name string) (ReadFile, error) { return os.Open(name) }

func (localFS) Create(name string) (WriteFile, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
}

// Rename fsyncs the directory so that the rename survives a crash.
func (localFS) Rename(oldname, newname string) error {
	if err := os.Rename(oldname, newname); err != nil {
		return err
	}
	return syncDir(filepath.Dir(newname))
}

func (localFS) CreateExclusive(name string) (WriteFile, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
}

func (localFS) Remove(name string) error              { return os.Remove(name) }
func (localFS) RemoveAll(name string) error           { return os.RemoveAll(name) }
func (localFS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }
func (localFS) Join(elem ...string) string            { return filepath.Join(elem...) }
func (localFS) Split(name string) (string, string)    { return filepath.Split(name) }
func (localFS) URL(name string) string                { return name }
func (localFS) Close() error                          { return nil }

// MkdirAll fsyncs the parent of every directory it creates, so that the new
// directories survive a crash.
func (localFS) MkdirAll(name string) error {
	var created []string // deepest first
	for p := filepath.Clean(name); ; {
		if _, err := os.Lstat(p); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		created = append(created, p)
		parent := filepath.Dir(p)
		if parent == p {
			break
		}
		p = parent
	}
	if err := os.MkdirAll(name, 0o755); err != nil {
		return err
	}
	for i := len(created) - 1; i >= 0; i-- {
		if err := syncDir(filepath.Dir(created[i])); err != nil {
			return fmt.Errorf("sync directory %s: %w", filepath.Dir(created[i]), err)
		}
	}
	return nil
}

func (localFS) ReadDir(name string) ([]fs.FileInfo, error) {
	ents, err := os.ReadDir(name)
	if err != nil {
		return nil, err
	}
	out := make([]fs.FileInfo, 0, len(ents))
	for _, e := range ents {
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, fi)
	}
	return out, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// hdfsFS is HDFS through colinmarc/hdfs.
type hdfsFS struct {
	c         *hdfs.Client
	authority string // host:port or nameservice, for URL
}

func (h *hdfsFS) Open(name string) (ReadFile, error) { return h.c.Open(name) }

func (h *hdfsFS) Create(name string) (WriteFile, error) {
	if _, err := h.c.Stat(name); err == nil {
		if err := h.c.Remove(name); err != nil {
			return nil, err
		}
	}
	return h.CreateExclusive(name)
}

// CreateExclusive relies on colinmarc/hdfs creating without the OVERWRITE
// flag: the namenode refuses an existing name (FileAlreadyExistsException, or
// AlreadyBeingCreatedException while another client writes it), which the
// client reports as fs.ErrExist.
func (h *hdfsFS) CreateExclusive(name string) (WriteFile, error) {
	w, err := h.c.Create(name)
	if err != nil {
		return nil, err
	}
	return hdfsWriter{w}, nil
}

func (h *hdfsFS) Rename(oldname, newname string) error { return h.c.Rename(oldname, newname) }
func (h *hdfsFS) Remove(name string) error             { return h.c.Remove(name) }
func (h *hdfsFS) RemoveAll(name string) error          { return h.c.RemoveAll(name) }
func (h *hdfsFS) Stat(name string) (fs.FileInfo, error) {
	return h.c.Stat(name)
}

// MkdirAll is durable once the namenode answers: it logs every namespace
// change to its edit log before replying.
func (h *hdfsFS) MkdirAll(name string) error         { return h.c.MkdirAll(name, 0o755) }
func (h *hdfsFS) Join(elem ...string) string         { return path.Join(elem...) }
func (h *hdfsFS) Split(name string) (string, string) { return path.Split(name) }
func (h *hdfsFS) URL(name string) string             { return "hdfs://" + h.authority + name }
func (h *hdfsFS) Close() error                       { return h.c.Close() }

func (h *hdfsFS) ReadDir(name string) ([]fs.FileInfo, error) {
	fis, err := h.c.ReadDir(name)
	if err != nil {
		return nil, err
	}
	sort.Slice(fis, func(i, j int) bool { return fis[i].Name() < fis[j].Name() })
	return fis, nil
}

// hdfsWriter: Flush sends buffered data to the datanodes; Close (which the
// sink calls before renaming) completes the file on the namenode.
type hdfsWriter struct{ w *hdfs.FileWriter }

func (h hdfsWriter) Write(b []byte) (int, error) { return h.w.Write(b) }
func (h hdfsWriter) Sync() error                 { return h.w.Flush() }

// Close completes the file, waiting for its last block's minimum
// replication (yarnhdfs.CloseFile): the sink renames it into place next.
func (h hdfsWriter) Close() error { return yarnhdfs.CloseFile(h.w) }

// hasMeta reports whether a path contains glob metacharacters.
func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[`) }

// Glob lists the regular files matching pattern (path.Match syntax in any
// component), sorted. A pattern without metacharacters matches itself when
// it is a file, and the files directly in it when it is a directory.
func Glob(fsys FS, pattern string) ([]string, error) {
	if !hasMeta(pattern) {
		fi, err := fsys.Stat(pattern)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			return []string{pattern}, nil
		}
		pattern = fsys.Join(pattern, "*")
	}
	// Find the deepest directory without metacharacters, then walk.
	dir, rest := pattern, []string(nil)
	for hasMeta(dir) {
		d, f := fsys.Split(dir)
		rest = append([]string{f}, rest...)
		dir = strings.TrimRight(d, `/\`)
		if dir == "" {
			dir = string(d[:min(len(d), 1)])
			if dir == "" {
				dir = "."
			}
		}
	}
	var out []string
	var walk func(dir string, rest []string) error
	walk = func(dir string, rest []string) error {
		fis, err := fsys.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		for _, fi := range fis {
			ok, err := path.Match(rest[0], fi.Name())
			if err != nil {
				return fmt.Errorf("connectors: bad glob %q: %w", pattern, err)
			}
			if !ok || strings.HasPrefix(fi.Name(), ".") && !strings.HasPrefix(rest[0], ".") {
				continue
			}
			p := fsys.Join(dir, fi.Name())
			switch {
			case len(rest) > 1 && fi.IsDir():
				if err := walk(p, rest[1:]); err != nil {
					return err
				}
			case len(rest) == 1 && fi.Mode().IsRegular():
				out = append(out, p)
			}
		}
		return nil
	}
	if err := walk(dir, rest); err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}
