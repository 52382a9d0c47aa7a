package connectors

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/colinmarc/hdfs/v2"
)

// FS is the little of a file system the file source and file sink need. Paths
// are slash-separated for HDFS and native for the local file system.
type FS interface {
	Open(name string) (ReadFile, error)
	// Create creates or truncates name for writing.
	Create(name string) (WriteFile, error)
	// Rename replaces newname with oldname atomically and durably.
	Rename(oldname, newname string) error
	Remove(name string) error
	Stat(name string) (fs.FileInfo, error)
	// ReadDir lists a directory sorted by name.
	ReadDir(name string) ([]fs.FileInfo, error)
	MkdirAll(name string) error
	// Join and Split handle the file system's path syntax.
	Join(elem ...string) string
	Split(name string) (dir, file string)
	Close() error
}

// ReadFile is an open file being read.
type ReadFile interface {
	io.ReadSeekCloser
}

// WriteFile is an open file being written. Sync makes what was written so far
// durable.
type WriteFile interface {
	io.WriteCloser
	Sync() error
}

var (
	_ FS = localFS{}
	_ FS = (*hdfsFS)(nil)
)

// OpenFS returns the file system a path lives on and the path within it:
// hdfs://host:port/dir/file is on HDFS (simple authentication, as the user in
// HADOOP_USER_NAME or else the current user), anything else is local.
func OpenFS(p string) (FS, string, error) {
	if !strings.HasPrefix(p, "hdfs://") {
		return localFS{}, p, nil
	}
	u, err := url.Parse(p)
	if err != nil || u.Host == "" {
		return nil, "", fmt.Errorf("connectors: bad hdfs URL (want hdfs://host:port/path)")
	}
	name := os.Getenv("HADOOP_USER_NAME")
	if name == "" {
		cur, err := user.Current()
		if err != nil {
			return nil, "", fmt.Errorf("connectors: hdfs user: %w", err)
		}
		name = cur.Username
	}
	c, err := hdfs.NewClient(hdfs.ClientOptions{Addresses: []string{u.Host}, User: name})
	if err != nil {
		return nil, "", fmt.Errorf("connectors: connect to namenode %s: %w", u.Host, err)
	}
	p = u.Path
	if p == "" {
		p = "/"
	}
	return &hdfsFS{c: c}, p, nil
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

func (localFS) Remove(name string) error              { return os.Remove(name) }
func (localFS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }
func (localFS) MkdirAll(name string) error            { return os.MkdirAll(name, 0o755) }
func (localFS) Join(elem ...string) string            { return filepath.Join(elem...) }
func (localFS) Split(name string) (string, string)    { return filepath.Split(name) }
func (localFS) Close() error                          { return nil }

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
type hdfsFS struct{ c *hdfs.Client }

func (h *hdfsFS) Open(name string) (ReadFile, error) { return h.c.Open(name) }

func (h *hdfsFS) Create(name string) (WriteFile, error) {
	if _, err := h.c.Stat(name); err == nil {
		if err := h.c.Remove(name); err != nil {
			return nil, err
		}
	}
	w, err := h.c.Create(name)
	if err != nil {
		return nil, err
	}
	return hdfsWriter{w}, nil
}

func (h *hdfsFS) Rename(oldname, newname string) error { return h.c.Rename(oldname, newname) }
func (h *hdfsFS) Remove(name string) error             { return h.c.Remove(name) }
func (h *hdfsFS) Stat(name string) (fs.FileInfo, error) {
	return h.c.Stat(name)
}
func (h *hdfsFS) MkdirAll(name string) error         { return h.c.MkdirAll(name, 0o755) }
func (h *hdfsFS) Join(elem ...string) string         { return path.Join(elem...) }
func (h *hdfsFS) Split(name string) (string, string) { return path.Split(name) }
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
func (h hdfsWriter) Close() error                { return h.w.Close() }

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
