package ipc

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
	"github.com/tidewatch/tidewatch/yarn/ipc/digestmd5"
	"github.com/tidewatch/tidewatch/yarn/token"
)

// SASL method and mechanism names (SaslRpcServer).
const (
	SASLMethodToken     = "TOKEN"
	SASLMethodSimple    = "SIMPLE"
	SASLMechanismDigest = "DIGEST-MD5"
	SASLDefaultServerID = "default"
	saslClientMaxBuf    = 65536
)

// saslToken runs the TOKEN/DIGEST-MD5 exchange of §5.2. pre holds bytes not
// yet sent (the preamble); they go out with the NEGOTIATE frame. When the
// negotiated qop is auth-int or auth-conf, it returns the security layer
// and the server's receive buffer size; for auth, a nil layer.
func (c *Client) saslToken(cn *conn, pre *bytes.Buffer, tok token.Token) (*digestmd5.Layer, int, error) {
	neg, err := MarshalFrame(RequestHeader(CallIDSASL, emptyClientID, -1),
		&hadoopproto.RpcSaslProto{State: hadoopproto.RpcSaslProto_NEGOTIATE.Enum()})
	if err != nil {
		return nil, 0, err
	}
	pre.Write(neg)
	if _, err := cn.nc.Write(pre.Bytes()); err != nil {
		return nil, 0, fmt.Errorf("%w: %s: send SASL NEGOTIATE: %w", ErrConnect, cn.addr, err)
	}
	pre.Reset()

	msg, err := readSASL(cn.fr)
	if err != nil {
		return nil, 0, err
	}
	if msg.GetState() != hadoopproto.RpcSaslProto_NEGOTIATE {
		return nil, 0, fmt.Errorf("%w: SASL: server answered NEGOTIATE with %s", ErrProtocol, msg.GetState())
	}
	var auth *hadoopproto.RpcSaslProto_SaslAuth
	var offered []string
	for _, a := range msg.GetAuths() {
		offered = append(offered, a.GetMethod()+"/"+a.GetMechanism())
		if auth == nil && a.GetMethod() == SASLMethodToken && a.GetMechanism() == SASLMechanismDigest {
			auth = a
		}
	}
	if auth == nil {
		return nil, 0, fmt.Errorf("%w: server does not offer TOKEN/DIGEST-MD5 (offered %v)", ErrAuth, offered)
	}
	ch, err := digestmd5.ParseChallenge(auth.GetChallenge())
	if err != nil {
		return nil, 0, fmt.Errorf("%w: SASL challenge: %w", ErrProtocol, err)
	}
	qop, cipher, err := chooseQOP(ch)
	if err != nil {
		return nil, 0, err
	}
	cnonce, err := c.newCNonce()
	if err != nil {
		return nil, 0, err
	}
	resp := &digestmd5.Response{
		Charset:   ch.Charset,
		Username:  tok.SASLUsername(),
		Nonce:     ch.Nonce,
		NC:        digestmd5.NC,
		CNonce:    cnonce,
		DigestURI: auth.GetProtocol() + "/" + auth.GetServerId(),
		MaxBuf:    saslClientMaxBuf,
		QOP:       qop,
		Cipher:    cipher,
	}
	if len(ch.Realms) > 0 {
		resp.Realm, resp.HasRealm = ch.Realms[0], true
	}
	password := tok.SASLPassword()
	resp.Response = digestmd5.ComputeResponse(password, resp)
	// The echo must equal the advertised auth without its challenge,
	// presence bits included (§5.2 step 3).
	echo := proto.Clone(auth).(*hadoopproto.RpcSaslProto_SaslAuth)
	echo.Challenge = nil
	init, err := MarshalFrame(RequestHeader(CallIDSASL, emptyClientID, -1), &hadoopproto.RpcSaslProto{
		State: hadoopproto.RpcSaslProto_INITIATE.Enum(),
		Token: resp.Encode(),
		Auths: []*hadoopproto.RpcSaslProto_SaslAuth{echo},
	})
	if err != nil {
		return nil, 0, err
	}
	if _, err := cn.nc.Write(init); err != nil {
		return nil, 0, fmt.Errorf("%w: %s: send SASL INITIATE: %w", ErrConnect, cn.addr, err)
	}
	msg, err = readSASL(cn.fr)
	if err != nil {
		return nil, 0, err
	}
	if msg.GetState() != hadoopproto.RpcSaslProto_SUCCESS {
		return nil, 0, fmt.Errorf("%w: SASL: server answered INITIATE with %s", ErrProtocol, msg.GetState())
	}
	got, err := digestmd5.ParseRspAuth(msg.GetToken())
	if err != nil {
		return nil, 0, fmt.Errorf("%w: SASL SUCCESS: %w", ErrProtocol, err)
	}
	want := digestmd5.ComputeRspAuth(password, resp)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return nil, 0, fmt.Errorf("%w: the server's rspauth does not match: it does not hold this token's password", ErrAuth)
	}
	if qop == digestmd5.QOPAuth {
		return nil, 0, nil
	}
	l, err := digestmd5.NewLayer(digestmd5.SessionKey(password, resp), qop, cipher, true)
	if err != nil {
		return nil, 0, err
	}
	return l, ch.MaxBuf, nil
}

// chooseQOP picks the qop of the response: auth when the server offers it
// (no security layer), else auth-conf with the first cipher of
// digestmd5.Ciphers the server offers, else auth-int. The server offers
// what the cluster's hadoop.rpc.protection asks for (§5.4).
func chooseQOP(ch *digestmd5.Challenge) (qop, cipher string, err error) {
	switch {
	case ch.OffersQOP(digestmd5.QOPAuth):
		return digestmd5.QOPAuth, "", nil
	case ch.OffersQOP(digestmd5.QOPAuthConf):
		for _, c := range digestmd5.Ciphers {
			if slices.Contains(ch.Ciphers, c) {
				return digestmd5.QOPAuthConf, c, nil
			}
		}
		if ch.OffersQOP(digestmd5.QOPAuthInt) {
			return digestmd5.QOPAuthInt, "", nil
		}
		return "", "", fmt.Errorf("%w: the server offers qop auth-conf with ciphers %q, none of which Tidewatch implements (%s)",
			ErrUnsupportedQOP, strings.Join(ch.Ciphers, ","), strings.Join(digestmd5.Ciphers, ","))
	case ch.OffersQOP(digestmd5.QOPAuthInt):
		return digestmd5.QOPAuthInt, "", nil
	}
	return "", "", fmt.Errorf("%w: the server offers SASL qop %s, none of auth, auth-int, auth-conf", ErrUnsupportedQOP, strings.Join(ch.QOPs, ","))
}

// readSASL reads the server's next SASL message. A non-SUCCESS status (FATAL
// with callId -33 or -1) is an authentication failure.
func readSASL(fr *FrameReader) (*hadoopproto.RpcSaslProto, error) {
	f, err := fr.ReadFrame()
	if err != nil {
		return nil, fmt.Errorf("%w: SASL: %w", ErrConnect, err)
	}
	h, err := DecodeResponseHeader(f)
	if err != nil {
		return nil, err
	}
	if h.GetStatus() != hadoopproto.RpcResponseHeaderProto_SUCCESS {
		return nil, fmt.Errorf("%w: %w", ErrAuth, remoteErrorFrom(h, ""))
	}
	if id := ResponseCallID(h); id != CallIDSASL {
		return nil, fmt.Errorf("%w: SASL: response with callId %d", ErrProtocol, id)
	}
	if len(f) != 2 {
		return nil, fmt.Errorf("%w: SASL: response with %d messages", ErrProtocol, len(f))
	}
	var m hadoopproto.RpcSaslProto
	if err := proto.Unmarshal(f[1], &m); err != nil {
		return nil, fmt.Errorf("%w: SASL: RpcSaslProto: %v", ErrProtocol, err)
	}
	return &m, nil
}
