package email

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtpServer is a small SMTP server for the tests (RFC 5321 with the
// STARTTLS and AUTH PLAIN extensions of RFC 3207 and RFC 4954): EHLO/HELO,
// STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
type smtpServer struct {
	ln       net.Listener
	tls      *tls.Config
	caFile   string
	offerTLS bool
	user     string
	pass     string
	// rcptReply, if set, answers every RCPT TO.
	rcptReply string

	mu       sync.Mutex
	mails    []receivedMail
	commands []string // verbs seen, in order
	wg       sync.WaitGroup
}

type receivedMail struct {
	from   string
	to     []string
	data   string
	tls    bool
	authed bool
}

// selfSigned makes a certificate for 127.0.0.1 and localhost, and writes it
// as a PEM file the client can trust.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smtp test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, path
}

func newSMTPServer(t *testing.T, offerTLS bool) *smtpServer {
	cert, caFile := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, tls: &tls.Config{Certificates: []tls.Certificate{cert}}, caFile: caFile, offerTLS: offerTLS,
		user: "alerts@example.com", pass: "smtp-pa55word-XYZ"}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *smtpServer) addr() string { return s.ln.Addr().String() }

func (s *smtpServer) seen(verb string) {
	s.mu.Lock()
	s.commands = append(s.commands, verb)
	s.mu.Unlock()
}

func (s *smtpServer) serve(conn net.Conn) {
	defer func() { conn.Close() }()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewConn(conn)
	reply := func(lines ...string) {
		for _, l := range lines {
			tp.PrintfLine("%s", l)
		}
	}
	reply("220 smtp.test ESMTP ready")
	var (
		tlsOn, authed bool
		cur           *receivedMail
	)
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		s.seen(verb)
		switch verb {
		case "EHLO":
			ext := []string{"250-smtp.test greets " + arg}
			if s.offerTLS && !tlsOn {
				ext = append(ext, "250-STARTTLS")
			}
			if tlsOn {
				ext = append(ext, "250-AUTH PLAIN")
			}
			reply(append(ext, "250 8BITMIME")...)
		case "HELO":
			reply("250 smtp.test")
		case "STARTTLS":
			if !s.offerTLS || tlsOn {
				reply("502 5.5.1 not offered")
				continue
			}
			reply("220 2.0.0 go ahead")
			tc := tls.Server(conn, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			conn, tlsOn, authed, cur = tc, true, false, nil
			tp = textproto.NewConn(conn)
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			if !tlsOn {
				reply("538 5.7.11 encryption required for requested authentication mechanism")
				continue
			}
			b, _ := base64.StdEncoding.DecodeString(resp)
			parts := strings.Split(string(b), "\x00")
			if strings.ToUpper(mech) != "PLAIN" || len(parts) != 3 || parts[1] != s.user || parts[2] != s.pass {
				// Careless servers quote what they got; the client must not pass it on.
				reply("535 5.7.8 authentication failed for " + resp)
				continue
			}
			authed = true
			reply("235 2.7.0 authentication successful")
		case "MAIL":
			if s.user != "" && s.offerTLS && !authed {
				reply("530 5.7.0 authentication required")
				continue
			}
			from, _, _ := strings.Cut(strings.TrimPrefix(arg, "FROM:"), " ") // drop BODY=8BITMIME and the like
			cur = &receivedMail{from: from, tls: tlsOn, authed: authed}
			reply("250 2.1.0 ok")
		case "RCPT":
			if cur == nil {
				reply("503 5.5.1 MAIL first")
				continue
			}
			if s.rcptReply != "" {
				reply(s.rcptReply)
				continue
			}
			cur.to = append(cur.to, strings.TrimPrefix(arg, "TO:"))
			reply("250 2.1.5 ok")
		case "DATA":
			if cur == nil || len(cur.to) == 0 {
				reply("503 5.5.1 RCPT first")
				continue
			}
			reply("354 end with <CRLF>.<CRLF>")
			data, err := io.ReadAll(tp.DotReader())
			if err != nil {
				return
			}
			cur.data = string(data)
			s.mu.Lock()
			s.mails = append(s.mails, *cur)
			s.mu.Unlock()
			cur = nil
			reply("250 2.0.0 queued")
		case "RSET":
			cur = nil
			reply("250 2.0.0 ok")
		case "NOOP":
			reply("250 2.0.0 ok")
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		default:
			reply("500 5.5.2 unknown command")
		}
	}
}
