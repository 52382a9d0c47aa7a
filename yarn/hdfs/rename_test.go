package hdfs_test

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tidewatch/tidewatch/yarn/hdfs"
	"github.com/tidewatch/tidewatch/yarn/ipc"
	"github.com/tidewatch/tidewatch/yarn/ipc/ipctest"
)

const (
	clientProtocol         = "org.apache.hadoop.hdfs.protocol.ClientProtocol"
	classFileAlreadyExists = "org.apache.hadoop.fs.FileAlreadyExistsException"
)

// rename2Request decodes Rename2RequestProto (ClientNamenodeProtocol.proto:
// src = 1, dst = 2, overwriteDest = 3) from the wire.
type rename2Request struct {
	src, dst                string
	overwrite, hasOverwrite bool
}

func decodeRename2(b []byte) (rename2Request, error) {
	var r rename2Request
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return r, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType, num == 2 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return r, protowire.ParseError(n)
			}
			if num == 1 {
				r.src = string(v)
			} else {
				r.dst = string(v)
			}
			b = b[n:]
		case num == 3 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return r, protowire.ParseError(n)
			}
			r.overwrite, r.hasOverwrite = v != 0, true
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return r, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return r, nil
}

// fakeNameNode answers rename2 the way FSDirRenameOp does for files: an
// existing destination is replaced only with overwriteDest, and otherwise
// refused with FileAlreadyExistsException. A standby refuses every write.
type fakeNameNode struct {
	srv     *ipctest.Server
	standby bool

	mu    sync.Mutex
	files map[string]bool
	calls []rename2Request
	users []string
}

func newFakeNameNode(t *testing.T, standby bool, files ...string) *fakeNameNode {
	t.Helper()
	srv, err := ipctest.NewServer(ipctest.Options{AllowSimple: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	nn := &fakeNameNode{srv: srv, standby: standby, files: map[string]bool{}}
	for _, f := range files {
		nn.files[f] = true
	}
	srv.HandleRaw(clientProtocol, "rename2", func(_ context.Context, call ipctest.CallInfo, b []byte) (proto.Message, error) {
		req, err := decodeRename2(b)
		if err != nil {
			return nil, &ipctest.Exception{Class: "java.io.IOException", Message: err.Error()}
		}
		nn.mu.Lock()
		defer nn.mu.Unlock()
		nn.calls = append(nn.calls, req)
		nn.users = append(nn.users, call.User)
		switch {
		case nn.standby:
			return nil, &ipctest.Exception{Class: "org.apache.hadoop.ipc.StandbyException", Message: "Operation category WRITE is not supported in state standby."}
		case !req.hasOverwrite:
			return nil, &ipctest.Exception{Class: "com.google.protobuf.UninitializedMessageException", Message: "Message missing required fields: overwriteDest"}
		case !nn.files[req.src]:
			return nil, &ipctest.Exception{Class: "java.io.FileNotFoundException", Message: "rename source " + req.src + " is not found."}
		case nn.files[req.dst] && !req.overwrite:
			return nil, &ipctest.Exception{Class: classFileAlreadyExists, Message: "rename destination " + req.dst + " already exists"}
		}
		delete(nn.files, req.src)
		nn.files[req.dst] = true
		return &emptypb.Empty{}, nil
	})
	return nn
}

func (nn *fakeNameNode) seen() ([]rename2Request, []string) {
	nn.mu.Lock()
	defer nn.mu.Unlock()
	return append([]rename2Request(nil), nn.calls...), append([]string(nil), nn.users...)
}

func (nn *fakeNameNode) has(p string) bool {
	nn.mu.Lock()
	defer nn.mu.Unlock()
	return nn.files[p]
}

// HDFS.RenameNoReplace sends rename2 with overwriteDest=false, finds the
// active NameNode of an HA pair, and reports an existing destination as
// fs.ErrExist without touching either file.
func TestHDFSRenameNoReplace(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	standby := newFakeNameNode(t, true)
	active := newFakeNameNode(t, false, "/s/.tidewatch-tmp-1", "/s/.tidewatch-tmp-2", "/s/other")
	h, err := hdfs.NewHDFS(hdfs.HDFSOptions{Addresses: []string{down, standby.srv.Addr(), active.srv.Addr()}, User: "tw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })

	if err := h.RenameNoReplace("/s/.tidewatch-tmp-1", "/s/tidewatch"); err != nil {
		t.Fatal(err)
	}
	if !active.has("/s/tidewatch") || active.has("/s/.tidewatch-tmp-1") {
		t.Errorf("not renamed: %v", active.files)
	}
	calls, users := active.seen()
	if len(calls) != 1 || calls[0] != (rename2Request{src: "/s/.tidewatch-tmp-1", dst: "/s/tidewatch", overwrite: false, hasOverwrite: true}) || users[0] != "tw" {
		t.Errorf("active NameNode saw %+v from %v", calls, users)
	}
	if calls, _ := standby.seen(); len(calls) != 1 {
		t.Errorf("standby saw %d calls, want 1", len(calls))
	}

	err = h.RenameNoReplace("/s/.tidewatch-tmp-2", "/s/tidewatch")
	var re *ipc.RemoteError
	if !errors.Is(err, fs.ErrExist) || !errors.As(err, &re) || re.Class != classFileAlreadyExists {
		t.Errorf("rename onto an existing file: %v", err)
	}
	if !active.has("/s/tidewatch") || !active.has("/s/.tidewatch-tmp-2") {
		t.Errorf("a refused rename changed files: %v", active.files)
	}
	if calls, _ := standby.seen(); len(calls) != 1 {
		t.Errorf("the second call went to the standby again (%d calls); it should start at the active NameNode", len(calls))
	}
	if err := h.RenameNoReplace("/s/missing", "/s/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing source: %v", err)
	}

	// No NameNode active: every error is reported.
	h2, err := hdfs.NewHDFS(hdfs.HDFSOptions{Addresses: []string{standby.srv.Addr(), down}, User: "tw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h2.Close() })
	err = h2.RenameNoReplace("/s/other", "/s/y")
	if !errors.As(err, &re) || re.Class != "org.apache.hadoop.ipc.StandbyException" || !errors.Is(err, ipc.ErrConnect) {
		t.Errorf("no active NameNode: %v", err)
	}
}

// RenameNoReplace on every FileSystem: it moves a file, keeping its
// modification time, and refuses an existing destination.
func TestRenameNoReplaceConformance(t *testing.T) {
	for _, u := range implementations(t) {
		t.Run(u.name, func(t *testing.T) {
			dir := u.staging + "/rename"
			if err := u.fs.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			write := func(p, content string) fs.FileInfo {
				w, err := u.fs.Create(p, 0o600)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write([]byte(content)); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				fi, err := u.fs.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				return fi
			}
			first := write(dir+"/a", "first")
			if err := u.fs.RenameNoReplace(dir+"/a", dir+"/final"); err != nil {
				t.Fatal(err)
			}
			if _, err := u.fs.Stat(dir + "/a"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("source still there: %v", err)
			}
			fi, err := u.fs.Stat(dir + "/final")
			if err != nil || fi.Size() != first.Size() || !fi.ModTime().Equal(first.ModTime()) {
				t.Fatalf("renamed file %v %v, want size %d and time %v", fi, err, first.Size(), first.ModTime())
			}
			write(dir+"/b", "second!")
			if err := u.fs.RenameNoReplace(dir+"/b", dir+"/final"); !errors.Is(err, fs.ErrExist) {
				t.Errorf("rename onto an existing file: %v", err)
			}
			if fi, err := u.fs.Stat(dir + "/final"); err != nil || fi.Size() != first.Size() || !fi.ModTime().Equal(first.ModTime()) {
				t.Errorf("existing file changed: %v %v", fi, err)
			}
			if _, err := u.fs.Stat(dir + "/b"); err != nil {
				t.Errorf("source of a refused rename: %v", err)
			}
		})
	}
}

// Something other than the binary at its content-addressed path is an
// error, and stays as it is.
func TestStageRefusesConflictingBinary(t *testing.T) {
	u := localFS(t)
	st := newStager(t, u.fs, u.staging)
	bin := writeTemp(t, "tidewatch", "binary v1")
	staged, err := st.Stage(context.Background(), hdfs.Request{ApplicationID: appID, Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	p := pathOf(t, u, staged.Resources["tidewatch"])
	lp := filepath.Join(u.fs.(*hdfs.LocalFS).Root, filepath.FromSlash(p))
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.WriteFile(lp, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(lp, old, old); err != nil {
		t.Fatal(err)
	}
	_, err = st.Stage(context.Background(), hdfs.Request{ApplicationID: "application_1795472519589_0008", Binary: bin})
	if !errors.Is(err, hdfs.ErrConflict) || !strings.Contains(err.Error(), "remove it") {
		t.Errorf("staging over a wrong-sized binary: %v", err)
	}
	if fi, err := os.Stat(lp); err != nil || fi.Size() != 5 || !fi.ModTime().Equal(old) {
		t.Errorf("the file in the way was changed: %v %v", fi, err)
	}
}
