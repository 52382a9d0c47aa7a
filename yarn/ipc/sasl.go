package ipc

import (
	"bytes"
	"crypto/subtle"
	"fmt"
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
// yet sent (the preamble); they go out with the NEGOTIATE frame.
func (c *Client) saslToken(cn *conn, pre *bytes.Buffer, tok token.Token) error {
	neg, err := MarshalFrame(RequestHeader(CallIDSASL, emptyClientID, -1),
		&hadoopproto.RpcSaslProto{State: hadoopproto.RpcSaslProto_NEGOTIATE.Enum()})
	if err != nil {
		return err
	}
	pre.Write(neg)
	if _, err := cn.nc.Write(pre.Bytes()); err != nil {
		return fmt.Errorf("%w: %s: send SASL NEGOTIATE: %w", ErrConnect, cn.addr, err)
	}
	pre.Reset()

	msg, err := readSASL(cn.fr)
	if err != nil {
		return err
	}
	if msg.GetState() != hadoopproto.RpcSaslProto_NEGOTIATE {
		return fmt.Errorf("%w: SASL: server answered NEGOTIATE with %s", ErrProtocol, msg.GetState())
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
		return fmt.Errorf("%w: server does not offer TOKEN/DIGEST-MD5 (offered %v)", ErrAuth, offered)
	}
	ch, err := digestmd5.ParseChallenge(auth.GetChallenge())
	if err != nil {
		return fmt.Errorf("%w: SASL challenge: %w", ErrProtocol, err)
	}
	if !ch.OffersQOP(digestmd5.QOPAuth) {
		return fmt.Errorf("%w: the server offers SASL qop %s only, which means the cluster sets hadoop.rpc.protection "+
			"to integrity or privacy; Tidewatch supports only qop auth (hadoop.rpc.protection=authentication)",
			ErrUnsupportedQOP, strings.Join(ch.QOPs, ","))
	}
	cnonce, err := c.newCNonce()
	if err != nil {
		return err
	}
	resp := &digestmd5.Response{
		Charset:   ch.Charset,
		Username:  tok.SASLUsername(),
		Nonce:     ch.Nonce,
		NC:        digestmd5.NC,
		CNonce:    cnonce,
		DigestURI: auth.GetProtocol() + "/" + auth.GetServerId(),
		MaxBuf:    saslClientMaxBuf,
		QOP:       digestmd5.QOPAuth,
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
		return err
	}
	if _, err := cn.nc.Write(init); err != nil {
		return fmt.Errorf("%w: %s: send SASL INITIATE: %w", ErrConnect, cn.addr, err)
	}
	msg, err = readSASL(cn.fr)
	if err != nil {
		return err
	}
	if msg.GetState() != hadoopproto.RpcSaslProto_SUCCESS {
		return fmt.Errorf("%w: SASL: server answered INITIATE with %s", ErrProtocol, msg.GetState())
	}
	got, err := digestmd5.ParseRspAuth(msg.GetToken())
	if err != nil {
		return fmt.Errorf("%w: SASL SUCCESS: %w", ErrProtocol, err)
	}
	want := digestmd5.ComputeRspAuth(password, resp)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return fmt.Errorf("%w: the server's rspauth does not match: it does not hold this token's password", ErrAuth)
	}
	return nil
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
