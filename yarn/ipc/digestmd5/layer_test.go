package digestmd5_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/ipc"
	"github.com/tidewatch/tidewatch/yarn/ipc/digestmd5"
	"github.com/tidewatch/tidewatch/yarn/ipc/ipctest/recorded"
)

// wrapTokens returns the tokens of the WRAP frames of one recorded wire
// stream: every frame after the first skip (the plain SASL exchange).
func wrapTokens(t *testing.T, stream []byte, skip int) [][]byte {
	t.Helper()
	fr := ipc.NewFrameReader(bytes.NewReader(stream), 0)
	var out [][]byte
	for i := 0; ; i++ {
		f, err := fr.ReadFrame()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if i < skip {
			continue
		}
		var m hadoopproto.RpcSaslProto
		if err := proto.Unmarshal(f[1], &m); err != nil || m.GetState() != hadoopproto.RpcSaslProto_WRAP {
			t.Fatalf("frame %d is not a WRAP message (%v)", i, err)
		}
		out = append(out, m.GetToken())
	}
}

// wrapListing holds what a privacy/*.wrap.txt states about its exchange.
type wrapListing struct {
	response *digestmd5.Response
	password string // as SASL uses it: Base64 of the token password
	ha1      []byte
}

func readWrapListing(t *testing.T, name string) wrapListing {
	t.Helper()
	b, err := recorded.File(name + ".wrap.txt")
	if err != nil {
		t.Fatal(err)
	}
	var w wrapListing
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			key, val, _ = strings.Cut(line, "=")
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch {
		case key == "response":
			if w.response, err = digestmd5.ParseResponse([]byte(val)); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(line, "token password"):
			pw, err := hex.DecodeString(strings.TrimSpace(strings.TrimPrefix(line, "token password")))
			if err != nil {
				t.Fatal(err)
			}
			w.password = base64.StdEncoding.EncodeToString(pw)
		case strings.HasPrefix(line, "HA1 = H(A1) raw"):
			_, v, _ := strings.Cut(line, "raw  =")
			if w.ha1, err = hex.DecodeString(strings.TrimSpace(v)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if w.response == nil || w.password == "" || len(w.ha1) != 16 {
		t.Fatalf("%s: listing incomplete", name)
	}
	return w
}

// TestLayerRecordedPrivacySessions checks the security layer against every
// WRAP token of the sessions recorded with hadoop.rpc.protection=privacy
// (3des): the session key from the real token, each token unwrapped by the
// receiving end into exactly the recorded plain stream, and each plain
// piece wrapped by the sending end into exactly the recorded token, with
// the cipher state carried from one token to the next.
func TestLayerRecordedPrivacySessions(t *testing.T) {
	n := 0
	for _, name := range recorded.Names() {
		s, err := recorded.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Wrapped {
			continue
		}
		n++
		t.Run(name, func(t *testing.T) {
			w := readWrapListing(t, name)
			r := w.response
			if r.QOP != digestmd5.QOPAuthConf || r.Cipher != "3des" {
				t.Fatalf("qop %s cipher %s", r.QOP, r.Cipher)
			}
			if digestmd5.ComputeResponse(w.password, r) != r.Response {
				t.Fatal("response does not verify with the listed token password")
			}
			ha1 := digestmd5.SessionKey(w.password, r)
			if !bytes.Equal(ha1[:], w.ha1) {
				t.Fatalf("session key %x, listing says %x", ha1, w.ha1)
			}
			// The SASL exchange takes two frames each way; the plain
			// streams hold them too, after the client's preamble.
			plainStart := func(stream []byte, frames int) []byte {
				fr := ipc.NewFrameReader(bytes.NewReader(stream), 0)
				for range frames {
					f, err := fr.ReadFrame()
					if err != nil {
						t.Fatal(err)
					}
					stream = stream[len(ipc.AppendFrame(nil, f...)):]
				}
				return stream
			}
			dirs := []struct {
				name           string
				wire, plain    []byte
				senderIsClient bool
			}{
				{"c2s", s.WireC2S[7:], plainStart(s.C2S[7:], 2), true},
				{"s2c", s.WireS2C, plainStart(s.S2C, 2), false},
			}
			for _, d := range dirs {
				send, err := digestmd5.NewLayer(ha1, r.QOP, r.Cipher, d.senderIsClient)
				if err != nil {
					t.Fatal(err)
				}
				recv, err := digestmd5.NewLayer(ha1, r.QOP, r.Cipher, !d.senderIsClient)
				if err != nil {
					t.Fatal(err)
				}
				var got []byte
				for i, tok := range wrapTokens(t, d.wire, 2) {
					msg, err := recv.Unwrap(tok)
					if err != nil {
						t.Fatalf("%s token %d: %v", d.name, i, err)
					}
					if again := send.Wrap(msg); !bytes.Equal(again, tok) {
						t.Fatalf("%s token %d: wrapping the plain bytes gives\n%x\nrecorded\n%x", d.name, i, again, tok)
					}
					got = append(got, msg...)
				}
				if !bytes.Equal(got, d.plain) {
					t.Fatalf("%s: unwrapped stream (%d bytes) differs from the recorded plain stream (%d bytes)", d.name, len(got), len(d.plain))
				}
			}
		})
	}
	if n != 6 {
		t.Fatalf("%d wrapped sessions, want 6", n)
	}
}

// TestLayerJDKRC4Vectors checks rc4, rc4-56 and rc4-40 against tokens the
// JDK's DIGEST-MD5 client and server wrapped in-process.
func TestLayerJDKRC4Vectors(t *testing.T) {
	b, err := recorded.File("privacy/jdk-rc4-vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	type vec struct {
		c2s     bool
		plain   []byte
		wrapped []byte
	}
	type block struct {
		cipher string
		ha1    []byte
		vecs   []vec
	}
	var blocks []*block
	var cur *block
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## cipher "):
			cur = &block{cipher: strings.TrimPrefix(line, "## cipher ")}
			blocks = append(blocks, cur)
		case cur != nil && strings.HasPrefix(line, "HA1 "):
			if cur.ha1, err = hex.DecodeString(strings.Fields(line)[1]); err != nil {
				t.Fatal(err)
			}
		case cur != nil && (strings.HasPrefix(line, "c2s seq ") || strings.HasPrefix(line, "s2c seq ")) && strings.Contains(line, " wrapped="):
			v := vec{c2s: strings.HasPrefix(line, "c2s")}
			for _, f := range strings.Fields(line) {
				k, val, _ := strings.Cut(f, "=")
				switch k {
				case "plain":
					v.plain, err = hex.DecodeString(val)
				case "wrapped":
					v.wrapped, err = hex.DecodeString(val)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			cur.vecs = append(cur.vecs, v)
		}
	}
	if len(blocks) != 3 {
		t.Fatalf("%d cipher blocks, want 3", len(blocks))
	}
	for _, bl := range blocks {
		t.Run(bl.cipher, func(t *testing.T) {
			if len(bl.ha1) != 16 || len(bl.vecs) != 4 {
				t.Fatalf("block incomplete: HA1 %x, %d vectors", bl.ha1, len(bl.vecs))
			}
			ha1 := [16]byte(bl.ha1)
			client, err := digestmd5.NewLayer(ha1, digestmd5.QOPAuthConf, bl.cipher, true)
			if err != nil {
				t.Fatal(err)
			}
			server, err := digestmd5.NewLayer(ha1, digestmd5.QOPAuthConf, bl.cipher, false)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range bl.vecs {
				send, recv := client, server
				if !v.c2s {
					send, recv = server, client
				}
				if got := send.Wrap(v.plain); !bytes.Equal(got, v.wrapped) {
					t.Fatalf("vector %d: wrap gives %x, JDK %x", i, got, v.wrapped)
				}
				got, err := recv.Unwrap(v.wrapped)
				if err != nil || !bytes.Equal(got, v.plain) {
					t.Fatalf("vector %d: unwrap gives %x, %v", i, got, err)
				}
			}
		})
	}
}

func testLayers(t testing.TB, qop, cipher string) (client, server *digestmd5.Layer) {
	ha1 := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	client, err := digestmd5.NewLayer(ha1, qop, cipher, true)
	if err != nil {
		t.Fatal(err)
	}
	server, err = digestmd5.NewLayer(ha1, qop, cipher, false)
	if err != nil {
		t.Fatal(err)
	}
	return client, server
}

var layerKinds = []struct{ qop, cipher string }{
	{digestmd5.QOPAuthInt, ""},
	{digestmd5.QOPAuthConf, "3des"},
	{digestmd5.QOPAuthConf, "des"},
	{digestmd5.QOPAuthConf, "rc4"},
	{digestmd5.QOPAuthConf, "rc4-56"},
	{digestmd5.QOPAuthConf, "rc4-40"},
}

// TestLayerRejects: a token that was altered, replayed, reordered or cut
// short does not unwrap.
func TestLayerRejects(t *testing.T) {
	for _, k := range layerKinds {
		t.Run(k.qop+"/"+k.cipher, func(t *testing.T) {
			msgs := [][]byte{[]byte("first message"), {}, bytes.Repeat([]byte{7}, 22), []byte("fourth")}
			client, server := testLayers(t, k.qop, k.cipher)
			var toks [][]byte
			for _, m := range msgs {
				toks = append(toks, client.Wrap(m))
			}
			got, err := server.Unwrap(toks[0])
			if err != nil || !bytes.Equal(got, msgs[0]) {
				t.Fatalf("unwrap: %q, %v", got, err)
			}
			bad := map[string][]byte{
				"replayed":     toks[0],
				"reordered":    toks[2],
				"short":        toks[1][:10],
				"altered":      flip(toks[1], 0),
				"altered mac":  flip(toks[1], len(toks[1])-7),
				"wrong type":   flip(toks[1], len(toks[1])-5),
				"wrong seq":    flip(toks[1], len(toks[1])-1),
				"extra byte":   append(bytes.Clone(toks[1][:len(toks[1])-6]), append([]byte{0}, toks[1][len(toks[1])-6:]...)...),
				"empty":        nil,
				"trailer only": {0, 1, 0, 0, 0, 1},
			}
			for what, tok := range bad {
				// A stream cipher's state moves on with every attempt, so
				// each attempt gets fresh layers advanced to token 1.
				_, server := testLayers(t, k.qop, k.cipher)
				if _, err := server.Unwrap(toks[0]); err != nil {
					t.Fatal(err)
				}
				if _, err := server.Unwrap(tok); !errors.Is(err, digestmd5.ErrIntegrity) {
					t.Errorf("%s token: err %v, want ErrIntegrity", what, err)
				}
			}
			for i := 1; i < len(msgs); i++ {
				got, err := server.Unwrap(toks[i])
				if err != nil || !bytes.Equal(got, msgs[i]) {
					t.Fatalf("message %d: %q, %v", i, got, err)
				}
			}
		})
	}
	if _, err := digestmd5.NewLayer([16]byte{}, digestmd5.QOPAuthConf, "aes", true); !errors.Is(err, digestmd5.ErrUnsupported) {
		t.Errorf("cipher aes: err %v", err)
	}
	if _, err := digestmd5.NewLayer([16]byte{}, digestmd5.QOPAuth, "", true); !errors.Is(err, digestmd5.ErrUnsupported) {
		t.Errorf("qop auth: err %v", err)
	}
}

func flip(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0x20
	return out
}

// FuzzUnwrap: whatever a peer sends, Unwrap returns a message or an error
// and never panics; after a valid token it still accepts the next one.
func FuzzUnwrap(f *testing.F) {
	client, _ := testLayers(f, digestmd5.QOPAuthConf, "3des")
	f.Add(uint8(1), client.Wrap([]byte("hello")))
	f.Add(uint8(0), []byte{0, 1, 0, 0, 0, 0})
	f.Add(uint8(3), bytes.Repeat([]byte{8}, 30))
	f.Fuzz(func(t *testing.T, kind uint8, tok []byte) {
		k := layerKinds[int(kind)%len(layerKinds)]
		_, server := testLayers(t, k.qop, k.cipher)
		_, _ = server.Unwrap(tok)
	})
}
