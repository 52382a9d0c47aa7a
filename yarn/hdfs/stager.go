package hdfs

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/tidewatch/tidewatch/yarn/rm"
)

// Options configure a Stager.
type Options struct {
	// StagingDir is the absolute staging directory on the filesystem
	// (e.g. /user/<user>/.staging).
	StagingDir string
	// DirMode and FileMode are the permissions of what the Stager creates
	// (default 0700 and 0600).
	DirMode  fs.FileMode
	FileMode fs.FileMode
	// Log is the injected logger (nil: discard).
	Log *logrus.Entry
}

// DefaultOptions returns the defaults; StagingDir is still to be set
// (DefaultStagingDir gives the usual one).
func DefaultOptions() Options {
	var o Options
	o.EnsureDefaults()
	return o
}

// DefaultStagingDir is /user/<user>/.staging.
func DefaultStagingDir(user string) string { return "/user/" + user + "/.staging" }

// EnsureDefaults fills zero fields.
func (o *Options) EnsureDefaults() {
	if o.DirMode == 0 {
		o.DirMode = 0o700
	}
	if o.FileMode == 0 {
		o.FileMode = 0o600
	}
	if o.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Log = logrus.NewEntry(l)
	}
}

// Validate names the first invalid field.
func (o *Options) Validate() error {
	if !path.IsAbs(o.StagingDir) || path.Clean(o.StagingDir) == "/" {
		return fmt.Errorf("%w: StagingDir: %q must be an absolute path below /", ErrInvalidOptions, o.StagingDir)
	}
	if o.DirMode&^fs.ModePerm != 0 || o.DirMode&0o700 != 0o700 {
		return fmt.Errorf("%w: DirMode: %v must be permission bits including 0700", ErrInvalidOptions, o.DirMode)
	}
	if o.FileMode&^fs.ModePerm != 0 || o.FileMode&0o400 == 0 {
		return fmt.Errorf("%w: FileMode: %v must be permission bits readable by the owner", ErrInvalidOptions, o.FileMode)
	}
	return nil
}

// Stager uploads application files and describes them as local resources.
type Stager struct {
	fs   FileSystem
	opts Options
	log  *logrus.Entry
}

// NewStager returns a Stager on fsys.
func NewStager(fsys FileSystem, opts Options) (*Stager, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if fsys == nil {
		return nil, fmt.Errorf("%w: FileSystem is nil", ErrInvalidOptions)
	}
	opts.StagingDir = path.Clean(opts.StagingDir)
	return &Stager{fs: fsys, opts: opts, log: opts.Log.WithField("component", "hdfs-stager")}, nil
}

// File is one file to stage. Exactly one of LocalPath and Data is set.
type File struct {
	// Link is the name in the container's working directory; a plain name.
	Link      string
	LocalPath string
	Data      []byte
	// Type is FILE (default) or ARCHIVE.
	Type rm.LocalResourceType
}

// Request says what to stage for one application.
type Request struct {
	ApplicationID string
	// Binary is the local path of the runtime binary; it is staged once per
	// content hash and linked as BinaryLink (default "tidewatch").
	Binary     string
	BinaryLink string
	// Files are the job spec and user files, staged under the
	// application's directory.
	Files []File
}

// Staged is the result of Stage.
type Staged struct {
	// Resources are the local resources for the AM container spec.
	Resources map[string]rm.LocalResource
	// AppDir is <staging>/<application-id>.
	AppDir string
	// BinaryReused is true when the binary was already staged.
	BinaryReused bool
}

// AppDir returns <staging>/<application-id>.
func (s *Stager) AppDir(appID string) string { return path.Join(s.opts.StagingDir, appID) }

// BinaryPath returns where a binary with the given sha256 (hex) is staged.
func (s *Stager) BinaryPath(sum, name string) string {
	return path.Join(s.opts.StagingDir, ".tidewatch", "bin", sum, name)
}

func validLink(l string) bool {
	return l != "" && l != "." && l != ".." && !strings.ContainsAny(l, "/\\\x00") && !strings.HasPrefix(l, ".tidewatch-tmp-")
}

// Stage uploads the request's files and returns their local resources, with
// size and timestamp read back from the filesystem after each upload.
func (s *Stager) Stage(ctx context.Context, req Request) (*Staged, error) {
	if _, err := rm.ParseApplicationID(req.ApplicationID); err != nil {
		return nil, fmt.Errorf("%w: ApplicationID: %w", ErrInvalidRequest, err)
	}
	if req.BinaryLink == "" {
		req.BinaryLink = "tidewatch"
	}
	links := map[string]bool{}
	if req.Binary != "" {
		if !validLink(req.BinaryLink) {
			return nil, fmt.Errorf("%w: BinaryLink %q", ErrInvalidRequest, req.BinaryLink)
		}
		links[req.BinaryLink] = true
	}
	for i, f := range req.Files {
		if !validLink(f.Link) || links[f.Link] {
			return nil, fmt.Errorf("%w: Files[%d].Link %q is empty, not a plain name, or repeated", ErrInvalidRequest, i, f.Link)
		}
		links[f.Link] = true
		if (f.LocalPath == "") == (f.Data == nil) {
			return nil, fmt.Errorf("%w: Files[%d]: set exactly one of LocalPath and Data", ErrInvalidRequest, i)
		}
		switch f.Type {
		case "", rm.TypeFile, rm.TypeArchive:
		default:
			return nil, fmt.Errorf("%w: Files[%d].Type %q", ErrInvalidRequest, i, f.Type)
		}
	}
	log := s.log.WithField("app", req.ApplicationID)
	out := &Staged{Resources: map[string]rm.LocalResource{}, AppDir: s.AppDir(req.ApplicationID)}
	// A failed staging leaves no application directory behind.
	fail := func(err error) (*Staged, error) {
		if rerr := s.fs.RemoveAll(out.AppDir); rerr != nil {
			log.WithError(rerr).Warn("could not remove a partly staged directory")
		}
		return nil, err
	}
	if err := s.mkdir(out.AppDir); err != nil {
		return fail(err)
	}
	if req.Binary != "" {
		lr, reused, err := s.stageBinary(ctx, req.Binary, req.BinaryLink)
		if err != nil {
			return fail(err)
		}
		out.Resources[req.BinaryLink] = lr
		out.BinaryReused = reused
		log.WithFields(logrus.Fields{"path": lr.URL, "reused": reused, "size": lr.Size}).Debug("runtime binary staged")
	}
	for _, f := range req.Files {
		if err := ctx.Err(); err != nil {
			return fail(fmt.Errorf("hdfs: staging %s: %w", req.ApplicationID, err))
		}
		dst := path.Join(out.AppDir, f.Link)
		if err := s.uploadFile(ctx, f, dst); err != nil {
			return fail(err)
		}
		typ := f.Type
		if typ == "" {
			typ = rm.TypeFile
		}
		lr, err := s.resource(dst, typ, rm.VisibilityApplication)
		if err != nil {
			return fail(err)
		}
		out.Resources[f.Link] = lr
	}
	log.WithField("files", len(out.Resources)).Info("application files staged")
	return out, nil
}

// stageBinary uploads the binary to its content-addressed place unless a
// complete copy is there already (uploads are renamed into place, so an
// existing file is complete). It never replaces that file: applications
// submitted with it would fail to localize it, the modification time having
// changed. If another deployment renamed its upload into place first, this
// upload is dropped and that file used.
func (s *Stager) stageBinary(ctx context.Context, local, link string) (rm.LocalResource, bool, error) {
	sum, size, err := hashFile(local)
	if err != nil {
		return rm.LocalResource{}, false, fmt.Errorf("hdfs: hashing %s: %w", local, err)
	}
	dst := s.BinaryPath(sum, link)
	// Staged already (or in the way, or unreadable)?
	if lr, err := s.stagedBinary(dst, size); !errors.Is(err, fs.ErrNotExist) {
		return lr, err == nil, err
	}
	if err := s.mkdir(path.Dir(dst)); err != nil {
		return rm.LocalResource{}, false, err
	}
	f, err := os.Open(local)
	if err != nil {
		return rm.LocalResource{}, false, fmt.Errorf("hdfs: %w", err)
	}
	defer f.Close()
	reused := false
	if err := s.upload(ctx, f, dst, false); errors.Is(err, fs.ErrExist) {
		s.log.WithField("path", dst).Debug("another deployment staged the binary meanwhile; using its copy")
		reused = true
	} else if err != nil {
		return rm.LocalResource{}, false, err
	}
	lr, err := s.stagedBinary(dst, size)
	return lr, reused, err
}

// stagedBinary describes the binary staged at dst. The error satisfies
// errors.Is(err, fs.ErrNotExist) when nothing is there, and wraps
// ErrConflict when something other than a file of the binary's size is.
func (s *Stager) stagedBinary(dst string, size int64) (rm.LocalResource, error) {
	fi, err := s.fs.Stat(dst)
	if err != nil {
		return rm.LocalResource{}, fmt.Errorf("hdfs: stat %s: %w", dst, err)
	}
	if fi.IsDir() {
		return rm.LocalResource{}, fmt.Errorf("%w: %s is a directory, not the runtime binary; remove it", ErrConflict, s.fs.URL(dst))
	}
	if fi.Size() != size {
		return rm.LocalResource{}, fmt.Errorf("%w: %s has %d bytes, not the %d of the runtime binary with this content hash; remove it", ErrConflict, s.fs.URL(dst), fi.Size(), size)
	}
	// PRIVATE: the NodeManager caches it for all of this user's
	// applications, keyed by path and timestamp, so reuse is fast there too.
	return s.resourceOf(dst, fi, rm.TypeFile, rm.VisibilityPrivate), nil
}

// mkdir creates a directory chain; the leaf gets DirMode explicitly, since
// the filesystem's umask may have changed it.
func (s *Stager) mkdir(dir string) error {
	if err := s.fs.MkdirAll(dir, s.opts.DirMode); err != nil {
		return fmt.Errorf("hdfs: mkdir %s: %w", dir, err)
	}
	if err := s.fs.Chmod(dir, s.opts.DirMode); err != nil {
		return fmt.Errorf("hdfs: chmod %s: %w", dir, err)
	}
	return nil
}

func (s *Stager) uploadFile(ctx context.Context, f File, dst string) error {
	if f.Data != nil {
		return s.upload(ctx, bytes.NewReader(f.Data), dst, true)
	}
	lf, err := os.Open(f.LocalPath)
	if err != nil {
		return fmt.Errorf("hdfs: staging %s: %w", f.Link, err)
	}
	defer lf.Close()
	return s.upload(ctx, lf, dst, true)
}

// upload writes src to a temporary name beside dst and renames it into
// place, so dst is never seen half-written. Without replace, an existing dst
// stays as it is, the upload is removed, and the error satisfies
// errors.Is(err, fs.ErrExist).
func (s *Stager) upload(ctx context.Context, src io.Reader, dst string, replace bool) error {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := path.Join(path.Dir(dst), ".tidewatch-tmp-"+hex.EncodeToString(rnd[:]))
	w, err := s.fs.Create(tmp, s.opts.FileMode)
	if err != nil {
		return fmt.Errorf("hdfs: create %s: %w", tmp, err)
	}
	_, cerr := io.Copy(w, ctxReader{ctx, src})
	if err := w.Close(); cerr == nil {
		cerr = err
	}
	if cerr == nil {
		cerr = s.fs.Chmod(tmp, s.opts.FileMode)
	}
	if cerr == nil && replace {
		cerr = s.fs.Rename(tmp, dst)
	} else if cerr == nil {
		cerr = s.fs.RenameNoReplace(tmp, dst)
	}
	if cerr != nil {
		_ = s.fs.RemoveAll(tmp)
		return fmt.Errorf("hdfs: upload %s: %w", dst, cerr)
	}
	return nil
}

// resource reads size and modification time back from the filesystem.
func (s *Stager) resource(p string, typ rm.LocalResourceType, vis rm.Visibility) (rm.LocalResource, error) {
	fi, err := s.fs.Stat(p)
	if err != nil {
		return rm.LocalResource{}, fmt.Errorf("hdfs: stat %s: %w", p, err)
	}
	return s.resourceOf(p, fi, typ, vis), nil
}

func (s *Stager) resourceOf(p string, fi fs.FileInfo, typ rm.LocalResourceType, vis rm.Visibility) rm.LocalResource {
	return rm.LocalResource{URL: s.fs.URL(p), Type: typ, Visibility: vis, Size: fi.Size(), Timestamp: modTimeMS(fi)}
}

// Cleanup deletes <staging>/<application-id>. The shared binary stays.
func (s *Stager) Cleanup(ctx context.Context, appID string) error {
	if _, err := rm.ParseApplicationID(appID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := s.AppDir(appID)
	start := time.Now()
	if err := s.fs.RemoveAll(dir); err != nil {
		return fmt.Errorf("hdfs: remove %s: %w", dir, err)
	}
	s.log.WithFields(logrus.Fields{"app": appID, "took_ms": time.Since(start).Milliseconds()}).Info("staging directory removed")
	return nil
}

// CleanupIfEnded removes the application's staging directory when the
// report shows a final state, and says whether it did.
func (s *Stager) CleanupIfEnded(ctx context.Context, app *rm.Application) (bool, error) {
	if app == nil || !rm.IsFinalState(app.State) {
		return false, nil
	}
	return true, s.Cleanup(ctx, app.ID)
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ctxReader stops a copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// VerifyLocalResource checks a local resource the way the NodeManager's
// FSDownload does before localizing: the file's modification time must equal
// the timestamp exactly (ErrChanged otherwise), and a PUBLIC resource must be
// readable by others with every ancestor directory executable by others
// (ErrNotPublic). Size is not checked, as on the NodeManager.
func VerifyLocalResource(fsys FileSystem, p string, lr rm.LocalResource) error {
	fi, err := fsys.Stat(p)
	if err != nil {
		return fmt.Errorf("hdfs: resource %s: %w", lr.URL, err)
	}
	if got := modTimeMS(fi); got != lr.Timestamp {
		return fmt.Errorf("%w: Resource %s changed on src filesystem - expected: %d was: %d", ErrChanged, lr.URL, lr.Timestamp, got)
	}
	if lr.Visibility == rm.VisibilityPublic {
		if fi.Mode().Perm()&0o004 == 0 {
			return fmt.Errorf("%w: %s is not readable by others", ErrNotPublic, lr.URL)
		}
		for d := path.Dir(p); ; d = path.Dir(d) {
			di, err := fsys.Stat(d)
			if err != nil {
				return fmt.Errorf("hdfs: resource %s: ancestor %s: %w", lr.URL, d, err)
			}
			if di.Mode().Perm()&0o001 == 0 {
				return fmt.Errorf("%w: ancestor %s of %s is not executable by others", ErrNotPublic, d, lr.URL)
			}
			if d == "/" {
				break
			}
		}
	}
	return nil
}
