package hadoopproto

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// The method names Hadoop IPC sends as strings exist in the services.
func TestMethodNamesMatchServices(t *testing.T) {
	tests := []struct {
		service string
		methods []string
	}{
		{"tidewatch.hadoop.yarn.ApplicationMasterProtocolService", []string{MethodRegisterApplicationMaster, MethodAllocate, MethodFinishApplicationMaster}},
		{"tidewatch.hadoop.yarn.ContainerManagementProtocolService", []string{MethodStartContainers, MethodStopContainers, MethodGetContainerStatuses}},
	}
	for _, tt := range tests {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(tt.service))
		if err != nil {
			t.Fatal(err)
		}
		sd := d.(protoreflect.ServiceDescriptor)
		for _, m := range tt.methods {
			if sd.Methods().ByName(protoreflect.Name(m)) == nil {
				t.Errorf("%s has no method %s", tt.service, m)
			}
		}
	}
}

// Spot checks of wire-critical fields against HADOOP_PROTOCOLS.md (the
// recorded-stream tests in yarn/ipc check every message byte for byte).
func TestWireCriticalFields(t *testing.T) {
	tests := []struct {
		msg    string
		field  string
		number protoreflect.FieldNumber
		kind   protoreflect.Kind
	}{
		{"tidewatch.hadoop.common.RpcRequestHeaderProto", "callId", 3, protoreflect.Sint32Kind},
		{"tidewatch.hadoop.common.RpcRequestHeaderProto", "retryCount", 5, protoreflect.Sint32Kind},
		{"tidewatch.hadoop.common.RpcResponseHeaderProto", "callId", 1, protoreflect.Uint32Kind},
		{"tidewatch.hadoop.common.RpcResponseHeaderProto", "retryCount", 8, protoreflect.Sint32Kind},
		{"tidewatch.hadoop.common.IpcConnectionContextProto", "userInfo", 2, protoreflect.MessageKind},
		{"tidewatch.hadoop.common.RpcSaslProto.SaslAuth", "challenge", 5, protoreflect.BytesKind},
		{"tidewatch.hadoop.yarn.AllocateResponseProto", "am_rm_token", 12, protoreflect.MessageKind},
		{"tidewatch.hadoop.yarn.AllocateRequestProto", "tracking_url", 11, protoreflect.StringKind},
		{"tidewatch.hadoop.yarn.ContainerLaunchContextProto", "tokens", 2, protoreflect.BytesKind},
		{"tidewatch.hadoop.yarn.AMRMTokenIdentifierProto", "keyId", 2, protoreflect.Int32Kind},
	}
	for _, tt := range tests {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(tt.msg))
		if err != nil {
			t.Fatal(err)
		}
		f := d.(protoreflect.MessageDescriptor).Fields().ByName(protoreflect.Name(tt.field))
		if f == nil || f.Number() != tt.number || f.Kind() != tt.kind {
			t.Errorf("%s.%s: %v", tt.msg, tt.field, f)
		}
	}
	// TokenProto: all four fields required.
	d, _ := protoregistry.GlobalFiles.FindDescriptorByName("tidewatch.hadoop.common.TokenProto")
	if n := d.(protoreflect.MessageDescriptor).RequiredNumbers().Len(); n != 4 {
		t.Errorf("TokenProto has %d required fields", n)
	}
}

func TestIDs(t *testing.T) {
	tests := []struct {
		text         string
		epoch, seq   int64
		app, attempt int32
	}{
		{"container_1795472850388_0001_01_000002", 0, 2, 1, 1},
		{"container_e17_1410901177871_0001_01_000005", 17, 5, 1, 1},
		{"container_1410901177871_12345_02_1234567", 0, 1234567, 12345, 2},
	}
	for _, tt := range tests {
		c, err := ParseContainerID(tt.text)
		if err != nil {
			t.Fatalf("%s: %v", tt.text, err)
		}
		if c.GetId() != tt.epoch<<40|tt.seq || c.GetAppAttemptId().GetApplicationId().GetId() != tt.app || c.GetAppAttemptId().GetAttemptId() != tt.attempt || c.AppId != nil {
			t.Errorf("%s parsed as %v", tt.text, c)
		}
		if got := ContainerIDString(c); got != tt.text {
			t.Errorf("%s formats as %s", tt.text, got)
		}
	}
	c, _ := ParseContainerID("container_1795472850388_0001_01_000002")
	if got := AttemptIDString(c.GetAppAttemptId()); got != "appattempt_1795472850388_0001_000001" {
		t.Error(got)
	}
	if got := ApplicationIDString(c.GetAppAttemptId().GetApplicationId()); got != "application_1795472850388_0001" {
		t.Error(got)
	}
	for _, bad := range []string{"", "container_", "container_1_2_3", "app_1_2_3_4", "container_ex_1_2_3_4", "container_1_2_3_x", "container_1_2_3_-4"} {
		if _, err := ParseContainerID(bad); !errors.Is(err, ErrBadID) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzParseContainerID(f *testing.F) {
	f.Add("container_e17_1410901177871_0001_01_000005")
	f.Add("container_1795472850388_0001_01_000002")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseContainerID(s)
		if err != nil {
			return
		}
		again, err := ParseContainerID(ContainerIDString(c))
		if err != nil || again.GetId() != c.GetId() {
			t.Fatalf("%q: round trip %v %v", s, again, err)
		}
	})
}

// No descriptor of this package may share a file path or a full name with
// another Go copy of Hadoop's protos (github.com/colinmarc/hdfs/v2, used by
// yarn/hdfs, registers hadoop.common.* from "RpcHeader.proto" etc.): the
// protobuf registry panics at init on such a conflict.
func TestRegistryNamesAreOurs(t *testing.T) {
	n := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("tidewatch.hadoop.common", func(fd protoreflect.FileDescriptor) bool { n++; return true })
	protoregistry.GlobalFiles.RangeFilesByPackage("tidewatch.hadoop.yarn", func(fd protoreflect.FileDescriptor) bool { n++; return true })
	if n != 9 {
		t.Errorf("%d files in the tidewatch.hadoop packages, want 9", n)
	}
	for _, fd := range []protoreflect.FileDescriptor{File_yarn_hadoopproto_RpcHeader_proto, File_yarn_hadoopproto_yarn_protos_proto, File_yarn_hadoopproto_Security_proto} {
		if !strings.HasPrefix(fd.Path(), "yarn/hadoopproto/") || !strings.HasPrefix(string(fd.Package()), "tidewatch.") {
			t.Errorf("file %s in package %s", fd.Path(), fd.Package())
		}
	}
}
