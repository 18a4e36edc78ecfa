package assistantsv1_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"

	assistantsv1 "github.com/assistants-grpc/assistants-grpc/clients/go/assistants/v1"
)

// The service and RPC names are public and fixed (DESIGN §2); Go callers
// compile against them.
func TestServicesHaveTheContractRPCs(t *testing.T) {
	want := map[protoreflect.FileDescriptor]map[string][]string{
		assistantsv1.File_assistants_v1_assistant_service_proto: {
			"AssistantService": {"CreateAssistant", "GetAssistant", "ListAssistants", "UpdateAssistant", "DeleteAssistant"},
		},
		assistantsv1.File_assistants_v1_thread_service_proto: {
			"ThreadService": {"CreateThread", "GetThread", "UpdateThread", "DeleteThread"},
		},
		assistantsv1.File_assistants_v1_message_service_proto: {
			"MessageService": {"CreateMessage", "GetMessage", "ListMessages", "UpdateMessage", "DeleteMessage"},
		},
		assistantsv1.File_assistants_v1_run_service_proto: {
			"RunService": {
				"CreateRun", "RunThread", "RunThreadStream", "CreateThreadAndRun", "CreateThreadAndRunStream",
				"GetRun", "ListRuns", "UpdateRun", "CancelRun", "SubmitToolOutputs", "SubmitToolOutputsStream",
				"SubscribeRun", "GetRunStep", "ListRunSteps",
			},
		},
	}
	streaming := map[string]bool{
		"RunThreadStream": true, "CreateThreadAndRunStream": true, "SubmitToolOutputsStream": true, "SubscribeRun": true,
	}
	for file, services := range want {
		for serviceName, methods := range services {
			service := file.Services().ByName(protoreflect.Name(serviceName))
			if service == nil {
				t.Errorf("%s: no service %s", file.Path(), serviceName)
				continue
			}
			if got := service.Methods().Len(); got != len(methods) {
				t.Errorf("%s has %d RPCs, want %d", serviceName, got, len(methods))
			}
			for _, name := range methods {
				method := service.Methods().ByName(protoreflect.Name(name))
				if method == nil {
					t.Errorf("%s: no RPC %s", serviceName, name)
					continue
				}
				if method.IsStreamingServer() != streaming[name] || method.IsStreamingClient() {
					t.Errorf("%s.%s: server streaming %v, client streaming %v",
						serviceName, name, method.IsStreamingServer(), method.IsStreamingClient())
				}
			}
		}
	}
}

// scriptedRuns streams a fixed run so the test can check the generated
// server-streaming code end to end over a real connection.
type scriptedRuns struct {
	assistantsv1.UnimplementedRunServiceServer
}

func (scriptedRuns) RunThreadStream(
	request *assistantsv1.RunThreadStreamRequest, stream assistantsv1.RunService_RunThreadStreamServer,
) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	run := &assistantsv1.Run{Id: "run_1", ThreadId: request.GetThreadId(), Status: "completed"}
	events := []*assistantsv1.RunStreamEvent{
		{SequenceNumber: 1, Event: "thread.message.delta", Data: &assistantsv1.RunStreamEvent_MessageDelta{
			MessageDelta: &assistantsv1.MessageDelta{Id: "msg_1", Delta: &assistantsv1.MessageDeltaBody{
				Content: []*assistantsv1.MessageContentDelta{{
					Index: 0, Type: "text",
					Part: &assistantsv1.MessageContentDelta_Text{Text: &assistantsv1.TextDelta{
						Value: stringPointer(md.Get("authorization")[0]),
					}},
				}},
			}},
		}},
		{SequenceNumber: 2, Event: "thread.run.completed", Data: &assistantsv1.RunStreamEvent_Run{Run: run}},
		{SequenceNumber: 3, Event: "done", Data: &assistantsv1.RunStreamEvent_Done{
			Done: &assistantsv1.StreamDone{Data: "[DONE]"},
		}},
	}
	for _, event := range events {
		if err := stream.Send(event); err != nil {
			return err
		}
	}
	return nil
}

func stringPointer(s string) *string { return &s }

func TestRunThreadStreamOverARealConnection(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	assistantsv1.RegisterRunServiceServer(server, scriptedRuns{})
	go func() { _ = server.Serve(listener) }()
	defer server.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, listener.Addr().String(), grpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer test-key")
	stream, err := assistantsv1.NewRunServiceClient(conn).RunThreadStream(ctx,
		&assistantsv1.RunThreadStreamRequest{ThreadId: "thread_1", AssistantId: "asst_1"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var text string
	for {
		event, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, event.GetEvent())
		for _, part := range event.GetMessageDelta().GetDelta().GetContent() {
			text += part.GetText().GetValue()
		}
		if run := event.GetRun(); run != nil && run.GetThreadId() != "thread_1" {
			t.Errorf("run thread_id = %q, want thread_1", run.GetThreadId())
		}
	}
	if want := []string{"thread.message.delta", "thread.run.completed", "done"}; len(names) != len(want) ||
		names[0] != want[0] || names[1] != want[1] || names[2] != want[2] {
		t.Errorf("events = %v, want %v", names, want)
	}
	if text != "Bearer test-key" {
		t.Errorf("delta text = %q, want the authorization metadata echoed", text)
	}
}
