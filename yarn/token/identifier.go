package token

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/tidewatch/tidewatch/yarn/hadoopproto"
)

// AMRMIdentifier is the decoded identifier of an AMRMToken.
type AMRMIdentifier struct {
	// Attempt is the application attempt the token belongs to.
	Attempt *hadoopproto.ApplicationAttemptIdProto
	// KeyID is the RM master key id; a random 32-bit int, often negative.
	KeyID int32
}

// User is the name the RM authenticates the token as: the attempt id string.
func (a AMRMIdentifier) User() string { return hadoopproto.AttemptIDString(a.Attempt) }

// DecodeAMRMIdentifier decodes the identifier of a YARN_AM_RM_TOKEN: a plain
// AMRMTokenIdentifierProto (§3.5).
func DecodeAMRMIdentifier(identifier []byte) (AMRMIdentifier, error) {
	var p hadoopproto.AMRMTokenIdentifierProto
	if err := proto.Unmarshal(identifier, &p); err != nil {
		return AMRMIdentifier{}, fmt.Errorf("%w: AMRMTokenIdentifierProto: %v", ErrMalformed, err)
	}
	if p.AppAttemptId == nil {
		return AMRMIdentifier{}, fmt.Errorf("%w: AMRM identifier has no application attempt", ErrMalformed)
	}
	return AMRMIdentifier{Attempt: p.GetAppAttemptId(), KeyID: p.GetKeyId()}, nil
}

// NMIdentifier is the decoded identifier of an NMToken.
type NMIdentifier struct {
	Attempt      *hadoopproto.ApplicationAttemptIdProto
	Node         *hadoopproto.NodeIdProto
	AppSubmitter string
	KeyID        int32
}

// User is the name the NM authenticates the token as: the attempt id string.
func (n NMIdentifier) User() string { return hadoopproto.AttemptIDString(n.Attempt) }

// DecodeNMIdentifier decodes the identifier of an NMToken.
func DecodeNMIdentifier(identifier []byte) (NMIdentifier, error) {
	var p hadoopproto.NMTokenIdentifierProto
	if err := proto.Unmarshal(identifier, &p); err != nil {
		return NMIdentifier{}, fmt.Errorf("%w: NMTokenIdentifierProto: %v", ErrMalformed, err)
	}
	if p.AppAttemptId == nil {
		return NMIdentifier{}, fmt.Errorf("%w: NM identifier has no application attempt", ErrMalformed)
	}
	return NMIdentifier{Attempt: p.GetAppAttemptId(), Node: p.GetNodeId(), AppSubmitter: p.GetAppSubmitter(), KeyID: p.GetKeyId()}, nil
}
