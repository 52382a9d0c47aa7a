package hdfs_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidewatch/tidewatch/yarn/hadoopconf"
	"github.com/tidewatch/tidewatch/yarn/hdfs"
	"github.com/tidewatch/tidewatch/yarn/rm"
	"github.com/tidewatch/tidewatch/yarn/rm/rmtest"
)

const appID = "application_1795472519589_0007"

// fsUnderTest is one FileSystem implementation with a fresh staging dir,
// and a way to make a staged file look modified.
type fsUnderTest struct {
	name    string
	fs      hdfs.FileSystem
	staging string
	touch   func(t *testing.T, p string)
}

// newStager returns a stager with the default options staging to staging.
func newStager(t *testing.T, fsys hdfs.FileSystem, staging string) *hdfs.Stager {
	t.Helper()
	opts := hdfs.DefaultOptions()
	opts.StagingDir = staging
	st, err := hdfs.NewStager(fsys, opts)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func localFS(t *testing.T) fsUnderTest {
	root := t.TempDir()
	l := &hdfs.LocalFS{Root: root}
	return fsUnderTest{name: "local", fs: l, staging: "/user/tw/.staging", touch: func(t *testing.T, p string) {
		lp := filepath.Join(root, filepath.FromSlash(p))
		fi, err := os.Stat(lp)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(lp, fi.ModTime(), fi.ModTime().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}}
}

// realHDFS is used when TIDEWATCH_NAMENODE (host:port) is set; the user is
// HADOOP_USER_NAME (default "tidewatch"). Everything is written below
// /tmp/tidewatch-test-<random> and removed afterwards.
func realHDFS(t *testing.T) (fsUnderTest, bool) {
	addr := os.Getenv("TIDEWATCH_NAMENODE")
	if addr == "" {
		return fsUnderTest{}, false
	}
	user := os.Getenv("HADOOP_USER_NAME")
	if user == "" {
		user = "tidewatch"
	}
	h, err := hdfs.NewHDFS(hdfs.HDFSOptions{Addresses: []string{addr}, User: user})
	if err != nil {
		t.Fatalf("connecting to the NameNode at %s as %s: %v", addr, user, err)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	base := "/tmp/tidewatch-test-" + hex.EncodeToString(rnd[:])
	t.Cleanup(func() {
		if err := h.RemoveAll(base); err != nil {
			t.Errorf("removing %s: %v", base, err)
		}
		h.Close()
	})
	return fsUnderTest{name: "hdfs", fs: h, staging: base + "/staging", touch: func(t *testing.T, p string) {
		// Re-uploading gives a new modification time on HDFS.
		w, err := h.Create(p+".new", 0o600)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte("changed"))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := h.Rename(p+".new", p); err != nil {
			t.Fatal(err)
		}
	}}, true
}

func implementations(t *testing.T) []fsUnderTest {
	out := []fsUnderTest{localFS(t)}
	if h, ok := realHDFS(t); ok {
		out = append(out, h)
	} else {
		t.Log("TIDEWATCH_NAMENODE not set; the suite runs on the local filesystem only")
	}
	return out
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// pathOf maps a staged resource URL back to its filesystem path.
func pathOf(t *testing.T, u fsUnderTest, lr rm.LocalResource) string {
	t.Helper()
	pu, err := url.Parse(lr.URL)
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := u.fs.(*hdfs.LocalFS); ok {
		return strings.TrimPrefix(pu.Path, filepath.ToSlash(l.Root))
	}
	return pu.Path
}

func TestStagerConformance(t *testing.T) {
	for _, u := range implementations(t) {
		t.Run(u.name, func(t *testing.T) { stagerSuite(t, u) })
	}
}

func stagerSuite(t *testing.T, u fsUnderTest) {
	ctx := context.Background()
	st := newStager(t, u.fs, u.staging)
	bin := writeTemp(t, "tidewatch", "#!/bin/sh\necho runtime v1\n")
	user := writeTemp(t, "lookup.csv", "a,1\nb,2\n")
	req := hdfs.Request{
		ApplicationID: appID,
		Binary:        bin,
		Files: []hdfs.File{
			{Link: "job.yaml", Data: []byte("name: job-a\n")},
			{Link: "lookup.csv", LocalPath: user},
		},
	}
	staged, err := st.Stage(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if staged.BinaryReused {
		t.Error("first staging reports a reused binary")
	}
	if len(staged.Resources) != 3 {
		t.Fatalf("resources %+v", staged.Resources)
	}
	wantSize := map[string]int64{"tidewatch": int64(len("#!/bin/sh\necho runtime v1\n")), "job.yaml": 12, "lookup.csv": 8}
	for link, lr := range staged.Resources {
		p := pathOf(t, u, lr)
		fi, err := u.fs.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", link, err)
		}
		if lr.Size != wantSize[link] || lr.Size != fi.Size() {
			t.Errorf("%s: size %d, file %d, want %d", link, lr.Size, fi.Size(), wantSize[link])
		}
		if lr.Timestamp != fi.ModTime().UnixMilli() || lr.Timestamp <= 0 {
			t.Errorf("%s: timestamp %d, file %d", link, lr.Timestamp, fi.ModTime().UnixMilli())
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", link, fi.Mode().Perm())
		}
		if lr.Type != rm.TypeFile {
			t.Errorf("%s: type %s", link, lr.Type)
		}
		if err := hdfs.VerifyLocalResource(u.fs, p, lr); err != nil {
			t.Errorf("%s: NodeManager check fails: %v", link, err)
		}
		d, err := u.fs.Stat(path.Dir(p))
		if err != nil || d.Mode().Perm() != 0o700 {
			t.Errorf("%s: directory mode %v %v, want 0700", link, d.Mode().Perm(), err)
		}
	}
	if v := staged.Resources["tidewatch"].Visibility; v != rm.VisibilityPrivate {
		t.Errorf("binary visibility %s, want PRIVATE", v)
	}
	if v := staged.Resources["job.yaml"].Visibility; v != rm.VisibilityApplication {
		t.Errorf("job spec visibility %s, want APPLICATION", v)
	}
	if p := pathOf(t, u, staged.Resources["job.yaml"]); p != u.staging+"/"+appID+"/job.yaml" {
		t.Errorf("job spec at %s", p)
	}
	if p := pathOf(t, u, staged.Resources["tidewatch"]); !strings.HasPrefix(p, u.staging+"/.tidewatch/bin/") || path.Base(p) != "tidewatch" {
		t.Errorf("binary at %s", p)
	}

	// Resubmission with the same binary reuses it, unchanged.
	const app2 = "application_1795472519589_0008"
	req.ApplicationID = app2
	again, err := st.Stage(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !again.BinaryReused || again.Resources["tidewatch"] != staged.Resources["tidewatch"] {
		t.Errorf("binary not reused: %+v vs %+v", again.Resources["tidewatch"], staged.Resources["tidewatch"])
	}
	// A changed binary goes to a new place.
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho runtime v2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	req.ApplicationID = "application_1795472519589_0009"
	v2, err := st.Stage(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if v2.BinaryReused || v2.Resources["tidewatch"].URL == staged.Resources["tidewatch"].URL {
		t.Errorf("changed binary reused: %+v", v2.Resources["tidewatch"])
	}

	// A modified file fails the NodeManager's exact timestamp check.
	jp := pathOf(t, u, staged.Resources["job.yaml"])
	u.touch(t, jp)
	if err := hdfs.VerifyLocalResource(u.fs, jp, staged.Resources["job.yaml"]); !errors.Is(err, hdfs.ErrChanged) || !strings.Contains(err.Error(), "changed on src filesystem") {
		t.Errorf("touched file: %v", err)
	}
	// 0600 files cannot be PUBLIC.
	pub := staged.Resources["lookup.csv"]
	pub.Visibility = rm.VisibilityPublic
	if err := hdfs.VerifyLocalResource(u.fs, pathOf(t, u, pub), pub); !errors.Is(err, hdfs.ErrNotPublic) {
		t.Errorf("public check: %v", err)
	}

	// Cleanup removes the application's directory only.
	if err := st.Cleanup(ctx, appID); err != nil {
		t.Fatal(err)
	}
	if _, err := u.fs.Stat(u.staging + "/" + appID); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("app dir still there: %v", err)
	}
	if _, err := u.fs.Stat(pathOf(t, u, again.Resources["tidewatch"])); err != nil {
		t.Errorf("shared binary removed: %v", err)
	}
	if _, err := u.fs.Stat(u.staging + "/" + app2 + "/job.yaml"); err != nil {
		t.Errorf("other application's files removed: %v", err)
	}
	if err := st.Cleanup(ctx, appID); err != nil {
		t.Errorf("second cleanup: %v", err)
	}
	done, err := st.CleanupIfEnded(ctx, &rm.Application{ID: app2, State: rm.StateRunning})
	if done || err != nil {
		t.Errorf("cleanup of a running app: %v %v", done, err)
	}
	done, err = st.CleanupIfEnded(ctx, &rm.Application{ID: app2, State: rm.StateKilled})
	if !done || err != nil {
		t.Errorf("cleanup of a killed app: %v %v", done, err)
	}
	if _, err := u.fs.Stat(u.staging + "/" + app2); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("killed app's dir still there: %v", err)
	}
}

func TestStageRejectsBadRequests(t *testing.T) {
	u := localFS(t)
	st := newStager(t, u.fs, u.staging)
	ctx := context.Background()
	tests := []struct {
		req   hdfs.Request
		field string
	}{
		{hdfs.Request{ApplicationID: "../etc"}, "ApplicationID"},
		{hdfs.Request{ApplicationID: appID, Files: []hdfs.File{{Link: "../x", Data: []byte{}}}}, "Files[0].Link"},
		{hdfs.Request{ApplicationID: appID, Files: []hdfs.File{{Link: "a", Data: []byte{}}, {Link: "a", Data: []byte{}}}}, "Files[1].Link"},
		{hdfs.Request{ApplicationID: appID, Files: []hdfs.File{{Link: "a"}}}, "Files[0]"},
		{hdfs.Request{ApplicationID: appID, Files: []hdfs.File{{Link: "a", Data: []byte{}, Type: rm.TypePattern}}}, "Files[0].Type"},
	}
	for _, tt := range tests {
		if _, err := st.Stage(ctx, tt.req); !errors.Is(err, hdfs.ErrInvalidRequest) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%s: %v", tt.field, err)
		}
	}
	if err := st.Cleanup(ctx, "/"); !errors.Is(err, hdfs.ErrInvalidRequest) {
		t.Errorf("cleanup of a bad id: %v", err)
	}
	// A missing local file fails the staging and leaves no directory.
	_, err := st.Stage(ctx, hdfs.Request{ApplicationID: appID, Files: []hdfs.File{{Link: "a", LocalPath: "/nonexistent/file"}}})
	if err == nil {
		t.Fatal("missing local file staged")
	}
	if _, err := u.fs.Stat(u.staging + "/" + appID); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("partly staged directory left: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := st.Stage(cctx, hdfs.Request{ApplicationID: appID, Files: []hdfs.File{{Link: "a", Data: []byte("x")}}}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		mod   func(*hdfs.Options)
		field string
	}{
		{func(o *hdfs.Options) { o.StagingDir = "" }, "StagingDir"},
		{func(o *hdfs.Options) { o.StagingDir = "relative/dir" }, "StagingDir"},
		{func(o *hdfs.Options) { o.StagingDir = "/" }, "StagingDir"},
		{func(o *hdfs.Options) { o.DirMode = 0o600 }, "DirMode"},
		{func(o *hdfs.Options) { o.FileMode = 0o200 }, "FileMode"},
	}
	for _, tt := range tests {
		o := hdfs.DefaultOptions()
		o.StagingDir = "/user/x/.staging"
		tt.mod(&o)
		if err := o.Validate(); !errors.Is(err, hdfs.ErrInvalidOptions) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%s: %v", tt.field, err)
		}
	}
	if got := hdfs.DefaultStagingDir("tw"); got != "/user/tw/.staging" {
		t.Errorf("default staging %q", got)
	}
}

func TestNewHDFSNeedsAddressesAndUser(t *testing.T) {
	if _, err := hdfs.NewHDFS(hdfs.HDFSOptions{User: "u"}); !errors.Is(err, hdfs.ErrInvalidOptions) || !strings.Contains(err.Error(), "Addresses") {
		t.Errorf("no address: %v", err)
	}
	conf := hadoopconf.FromMap(map[string]string{"fs.defaultFS": "file:///"})
	if _, err := hdfs.NewHDFS(hdfs.HDFSOptions{Conf: conf, User: "u"}); !errors.Is(err, hadoopconf.ErrNotHDFS) {
		t.Errorf("file:/// default FS: %v", err)
	}
	conf = hadoopconf.FromMap(map[string]string{"fs.defaultFS": "hdfs://nn:8020", "hadoop.security.authentication": "kerberos"})
	if _, err := hdfs.NewHDFS(hdfs.HDFSOptions{Conf: conf, User: "u"}); !errors.Is(err, hdfs.ErrInvalidOptions) {
		t.Errorf("kerberos: %v", err)
	}
}

// Staged resources go into a submission that the fake RM accepts, and its
// localizer (the NodeManager's checks) accepts them at launch — until a
// staged file changes.
func TestStagedResourcesLocalizeThroughFakeRM(t *testing.T) {
	u := localFS(t)
	st := newStager(t, u.fs, u.staging)
	s := rmtest.New(rmtest.Options{CheckResource: func(link string, lr rmtest.LocalResource) error {
		r := rm.LocalResource{URL: lr.URL, Type: rm.LocalResourceType(lr.Type), Visibility: rm.Visibility(lr.Visibility), Size: lr.Size, Timestamp: lr.Timestamp}
		return hdfs.VerifyLocalResource(u.fs, pathOf(t, u, r), r)
	}})
	defer s.Close()
	o := rm.DefaultOptions()
	o.BaseURLs = []string{s.URL()}
	o.User = "tw"
	c, err := rm.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	bin := writeTemp(t, "tidewatch", "binary")
	submit := func() (string, *hdfs.Staged) {
		na, err := c.NewApplication(ctx)
		if err != nil {
			t.Fatal(err)
		}
		staged, err := st.Stage(ctx, hdfs.Request{ApplicationID: na.ApplicationID, Binary: bin, Files: []hdfs.File{{Link: "job.yaml", Data: []byte("job")}}})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Submit(ctx, &rm.ApplicationSubmission{
			ApplicationID: na.ApplicationID, Name: "job", ApplicationType: rm.ApplicationTypeTidewatch,
			AMContainerSpec: rm.ContainerLaunchContext{LocalResources: staged.Resources, Commands: []string{"./tidewatch am"}},
			Resource:        rm.Resource{MemoryMB: 512, VCores: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
		return na.ApplicationID, staged
	}
	id, _ := submit()
	if err := s.LaunchAttempt(id); err != nil {
		t.Fatalf("launch with freshly staged files: %v", err)
	}
	id2, staged2 := submit()
	u.touch(t, pathOf(t, u, staged2.Resources["job.yaml"]))
	err = s.LaunchAttempt(id2)
	if !errors.Is(err, hdfs.ErrChanged) {
		t.Fatalf("launch after the file changed: %v", err)
	}
	a, err := c.Attempts(ctx, id2)
	if err != nil || len(a) != 2 {
		t.Errorf("failed localization should cost an attempt: %+v %v", a, err)
	}
}

// raceFS is one stager's view of a LocalFS shared with another stager. Like
// HDFS, it gives a file its modification time when the file is closed,
// from a clock shared by the views, so no two uploads share a timestamp. It
// calls created after creating a file in the binary directory and
// beforeRename before moving an upload there.
type raceFS struct {
	hdfs.FileSystem
	root         string
	clock        *atomic.Int64 // seconds since 2030-01-01
	created      func()
	beforeRename func()
}

func isBinaryDir(p string) bool { return strings.Contains(p, "/.tidewatch/bin/") }

func (r *raceFS) Create(p string, perm fs.FileMode) (io.WriteCloser, error) {
	w, err := r.FileSystem.Create(p, perm)
	if err != nil {
		return nil, err
	}
	if isBinaryDir(p) && r.created != nil {
		r.created()
	}
	return &closeHook{WriteCloser: w, closed: func() error {
		t := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.clock.Add(1)) * time.Second)
		return os.Chtimes(filepath.Join(r.root, filepath.FromSlash(p)), t, t)
	}}, nil
}

func (r *raceFS) Rename(oldpath, newpath string) error {
	if isBinaryDir(newpath) && r.beforeRename != nil {
		r.beforeRename()
	}
	return r.FileSystem.Rename(oldpath, newpath)
}

func (r *raceFS) RenameNoReplace(oldpath, newpath string) error {
	if isBinaryDir(newpath) && r.beforeRename != nil {
		r.beforeRename()
	}
	return r.FileSystem.RenameNoReplace(oldpath, newpath)
}

type closeHook struct {
	io.WriteCloser
	closed func() error
}

func (c *closeHook) Close() error {
	if err := c.WriteCloser.Close(); err != nil {
		return err
	}
	return c.closed()
}

// Two deployments stage the same binary at once; both find no staged copy
// and upload it. The second to finish must not replace the first's file:
// the first application was submitted with its modification time, and the
// NodeManager refuses a resource whose timestamp changed (§1.3.2).
func TestConcurrentStagingKeepsTheFirstBinary(t *testing.T) {
	u := localFS(t)
	root := u.fs.(*hdfs.LocalFS).Root
	var clock atomic.Int64
	bCreated, aDone := make(chan struct{}), make(chan struct{})
	wait := func(ch chan struct{}, what string) {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Errorf("gave up waiting for %s", what)
		}
	}
	var once sync.Once
	fsA := &raceFS{FileSystem: u.fs, root: root, clock: &clock,
		// A renames only once B has found no staged copy and begun its upload.
		beforeRename: func() { wait(bCreated, "B's upload") }}
	fsB := &raceFS{FileSystem: u.fs, root: root, clock: &clock,
		created: func() { once.Do(func() { close(bCreated) }) },
		// B renames only after A's staging has finished.
		beforeRename: func() { wait(aDone, "A's staging") }}
	stager := func(fsys hdfs.FileSystem) *hdfs.Stager {
		return newStager(t, fsys, u.staging)
	}
	stA, stB := stager(fsA), stager(fsB)
	bin := writeTemp(t, "tidewatch", "#!/bin/sh\necho runtime\n")
	req := func(app string) hdfs.Request {
		return hdfs.Request{ApplicationID: app, Binary: bin, Files: []hdfs.File{{Link: "job.yaml", Data: []byte("job")}}}
	}
	sum := sha256.Sum256([]byte("#!/bin/sh\necho runtime\n"))
	binPath := stA.BinaryPath(hex.EncodeToString(sum[:]), "tidewatch")
	ctx := context.Background()
	var (
		wg          sync.WaitGroup
		a, b        *hdfs.Staged
		errA, errB  error
		mtimeAfterA int64
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(aDone)
		if a, errA = stA.Stage(ctx, req("application_1795472519589_0011")); errA == nil {
			if fi, err := u.fs.Stat(binPath); err == nil {
				mtimeAfterA = fi.ModTime().UnixMilli()
			}
		}
	}()
	go func() {
		defer wg.Done()
		b, errB = stB.Stage(ctx, req("application_1795472519589_0012"))
	}()
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("staging: A %v, B %v", errA, errB)
	}
	ra, rb := a.Resources["tidewatch"], b.Resources["tidewatch"]
	if ra != rb || pathOf(t, u, ra) != binPath {
		t.Errorf("the two applications got different binaries:\nA %+v\nB %+v", ra, rb)
	}
	if a.BinaryReused || !b.BinaryReused {
		t.Errorf("reused: A %t, B %t; want false, true", a.BinaryReused, b.BinaryReused)
	}
	fi, err := u.fs.Stat(binPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.ModTime().UnixMilli(); got != mtimeAfterA || got != ra.Timestamp {
		t.Errorf("staged binary replaced: modification time %d, %d after A's staging, A's resource %d", got, mtimeAfterA, ra.Timestamp)
	}
	for name, lr := range map[string]rm.LocalResource{"A": ra, "B": rb} {
		if lr.Size != fi.Size() {
			t.Errorf("%s: size %d, file %d", name, lr.Size, fi.Size())
		}
		if err := hdfs.VerifyLocalResource(u.fs, binPath, lr); err != nil {
			t.Errorf("%s: NodeManager check fails: %v", name, err)
		}
	}
	entries, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(path.Dir(binPath))))
	if err != nil || len(entries) != 1 {
		t.Errorf("binary directory holds %v (%v), want the binary alone", entries, err)
	}
}
