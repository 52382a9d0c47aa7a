package hdfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/tidewatch/tidewatch/yarn/ipc"
)

// ClientProtocol is the NameNode's RPC interface for HDFS clients.
const (
	clientProtocol        = "org.apache.hadoop.hdfs.protocol.ClientProtocol"
	clientProtocolVersion = 1
)

// Exceptions the NameNode answers rename2 with.
const (
	classFileAlreadyExists = "org.apache.hadoop.fs.FileAlreadyExistsException"
	classFileNotFound      = "java.io.FileNotFoundException"
	classStandby           = "org.apache.hadoop.ipc.StandbyException"
	// An observer NameNode (HDFS 3.3) sends writes to the active one.
	classObserverRetry = "org.apache.hadoop.ipc.ObserverRetryOnActiveException"
)

// renameTimeout bounds one rename2 call, connecting included.
const renameTimeout = time.Minute

// rename2Request and rename2Response are Rename2RequestProto and
// Rename2ResponseProto of Hadoop's ClientNamenodeProtocol.proto.
// colinmarc/hdfs has Go types for them, but in an internal package.
var rename2Request, rename2Response = rename2Descriptors()

func rename2Descriptors() (protoreflect.MessageDescriptor, protoreflect.MessageDescriptor) {
	field := func(name string, number int32, typ descriptorpb.FieldDescriptorProto_Type) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{
			Name:   proto.String(name),
			Number: proto.Int32(number),
			Type:   typ.Enum(),
			Label:  descriptorpb.FieldDescriptorProto_LABEL_REQUIRED.Enum(),
		}
	}
	f, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:    proto.String("tidewatch/yarn/hdfs/rename2.proto"),
		Package: proto.String("hadoop.hdfs"),
		Syntax:  proto.String("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("Rename2RequestProto"), Field: []*descriptorpb.FieldDescriptorProto{
				field("src", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING),
				field("dst", 2, descriptorpb.FieldDescriptorProto_TYPE_STRING),
				field("overwriteDest", 3, descriptorpb.FieldDescriptorProto_TYPE_BOOL),
			}},
			{Name: proto.String("Rename2ResponseProto")},
		},
	}, new(protoregistry.Files))
	if err != nil {
		panic(fmt.Sprintf("hdfs: rename2 descriptors: %v", err))
	}
	return f.Messages().ByName("Rename2RequestProto"), f.Messages().ByName("Rename2ResponseProto")
}

// RenameNoReplace renames with ClientProtocol.rename2 and
// overwriteDest=false: the NameNode refuses an existing newpath
// (FileAlreadyExistsException, reported as fs.ErrExist) in the same atomic
// step as the rename. colinmarc/hdfs's Rename always sends
// overwriteDest=true.
func (h *HDFS) RenameNoReplace(oldpath, newpath string) error {
	req := dynamicpb.NewMessage(rename2Request)
	fields := rename2Request.Fields()
	req.Set(fields.ByName("src"), protoreflect.ValueOfString(oldpath))
	req.Set(fields.ByName("dst"), protoreflect.ValueOfString(newpath))
	req.Set(fields.ByName("overwriteDest"), protoreflect.ValueOfBool(false))
	ctx, cancel := context.WithTimeout(context.Background(), renameTimeout)
	defer cancel()
	if err := h.nn.call(ctx, "rename2", req, dynamicpb.NewMessage(rename2Response)); err != nil {
		return fmt.Errorf("hdfs: rename %s to %s: %w", oldpath, newpath, fsError(err))
	}
	return nil
}

// fsError adds the io/fs sentinel that a NameNode exception stands for.
func fsError(err error) error {
	var re *ipc.RemoteError
	if !errors.As(err, &re) {
		return err
	}
	switch re.Class {
	case classFileAlreadyExists:
		return fmt.Errorf("%w: %w", fs.ErrExist, err)
	case classFileNotFound:
		return fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	case ipc.ClassAccessControl:
		return fmt.Errorf("%w: %w", fs.ErrPermission, err)
	}
	return err
}

// nameNodeRPC makes the ClientProtocol calls that colinmarc/hdfs does not
// offer, with SIMPLE authentication (NewHDFS refuses Kerberos). Each call
// has a connection of its own: such calls are rare (one per newly staged
// binary), and the NameNode closes connections that stay idle.
type nameNodeRPC struct {
	addrs []string // every NameNode of the nameservice
	user  string

	mu     sync.Mutex
	active int // index of the NameNode that answered last; calls start there
}

// call tries the NameNodes in turn, from the one that answered last, until
// one is reachable and not in standby (an HA standby refuses every write
// with StandbyException).
func (n *nameNodeRPC) call(ctx context.Context, method string, req, resp proto.Message) error {
	n.mu.Lock()
	start := n.active
	n.mu.Unlock()
	var errs []error
	for i := range n.addrs {
		k := (start + i) % len(n.addrs)
		err := n.callOne(ctx, n.addrs[k], method, req, resp)
		if !failOver(err) {
			n.mu.Lock()
			n.active = k
			n.mu.Unlock()
			return err
		}
		errs = append(errs, fmt.Errorf("namenode %s: %w", n.addrs[k], err))
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

func (n *nameNodeRPC) callOne(ctx context.Context, addr, method string, req, resp proto.Message) error {
	c, err := ipc.New(ipc.Options{
		Addrs:           []string{addr},
		Protocol:        clientProtocol,
		ProtocolVersion: clientProtocolVersion,
		Auth:            ipc.AuthSimple,
		User:            n.user,
	})
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Call(ctx, method, req, resp)
}

// failOver reports an error after which another NameNode may succeed: this
// one was unreachable or is not the active one. A call that broke in flight is
// not repeated, since it may have been applied.
func failOver(err error) bool {
	var re *ipc.RemoteError
	return errors.Is(err, ipc.ErrConnect) || (errors.As(err, &re) && (re.Class == classStandby || re.Class == classObserverRetry))
}
