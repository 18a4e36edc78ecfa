// Command quickstart runs the Quick Start against a running server: it finds
// or creates an assistant, starts a thread, adds a message and streams the
// run's reply as it is written; then it asks a question the assistant answers
// by calling a function, runs the function here, submits its output with
// SubmitToolOutputsStream and prints the answer.
//
//	ASSISTANTS_GRPC_TARGET  host:port of the server (default 127.0.0.1:50051)
//	ASSISTANTS_API_KEY      sent as "authorization: Bearer <key>" when set
//	ASSISTANTS_MODEL        the model for new assistants (default scripted-demo)
//
// It exits non-zero when a call fails, a run does not complete, or the model
// makes no function call, so it doubles as a smoke test.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	assistantsv1 "github.com/assistants-grpc/assistants-grpc/clients/go/assistants/v1"
)

// clients bundles the four service stubs over one connection.
type clients struct {
	assistants assistantsv1.AssistantServiceClient
	threads    assistantsv1.ThreadServiceClient
	messages   assistantsv1.MessageServiceClient
	runs       assistantsv1.RunServiceClient
	model      string
}

// eventStream is what RunThreadStream and SubmitToolOutputsStream share.
type eventStream interface {
	Recv() (*assistantsv1.RunStreamEvent, error)
}

func main() {
	if err := run(); err != nil {
		if st, ok := status.FromError(err); ok {
			fmt.Fprintf(os.Stderr, "quickstart: %s: %s\n", st.Code(), st.Message())
		} else {
			fmt.Fprintf(os.Stderr, "quickstart: %v\n", err)
		}
		os.Exit(1)
	}
}

func run() error {
	target := envOr("ASSISTANTS_GRPC_TARGET", "127.0.0.1:50051")

	// Runs on the scripted model finish in moments; the deadline only keeps a
	// broken server from hanging the program.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if key := os.Getenv("ASSISTANTS_API_KEY"); key != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
	}

	// Plaintext, as the server listens without TLS unless configured for it.
	// WithInsecure rather than credentials/insecure: the latter is newer than
	// the grpc-go this client is built against.
	conn, err := grpc.DialContext(ctx, target, grpc.WithInsecure())
	if err != nil {
		return fmt.Errorf("dial %s: %w", target, err)
	}
	defer conn.Close()

	c := clients{
		assistants: assistantsv1.NewAssistantServiceClient(conn),
		threads:    assistantsv1.NewThreadServiceClient(conn),
		messages:   assistantsv1.NewMessageServiceClient(conn),
		runs:       assistantsv1.NewRunServiceClient(conn),
		model:      envOr("ASSISTANTS_MODEL", "scripted-demo"),
	}
	return c.quickstart(ctx)
}

// quickstart runs the Quick Start on one thread.
func (c clients) quickstart(ctx context.Context) error {
	// Get the assistant: the first one on the model, or a new one.
	listed, err := c.assistants.ListAssistants(ctx, &assistantsv1.ListAssistantsRequest{})
	if err != nil {
		return err
	}
	var assistant *assistantsv1.Assistant
	for _, candidate := range listed.GetData() {
		if candidate.GetModel() == c.model {
			assistant = candidate
			break
		}
	}
	if assistant == nil {
		created, err := c.assistants.CreateAssistant(ctx, &assistantsv1.CreateAssistantRequest{
			Model:        c.model,
			Name:         proto.String("Quick Start"),
			Instructions: proto.String("You are a helpful assistant."),
		})
		if err != nil {
			return err
		}
		assistant = created.GetAssistant()
	}
	fmt.Printf("assistant %s (%d listed)\n", assistant.GetId(), len(listed.GetData()))

	// Create a thread, add a message, run the assistant and stream its reply.
	created, err := c.threads.CreateThread(ctx, &assistantsv1.CreateThreadRequest{})
	if err != nil {
		return err
	}
	thread := created.GetThread()
	if err := c.addMessage(ctx, thread.GetId(), "Hello! What can you do?"); err != nil {
		return err
	}
	fmt.Printf("thread %s; streaming the reply:\n", thread.GetId())
	stream, err := c.runs.RunThreadStream(ctx, &assistantsv1.RunThreadStreamRequest{
		ThreadId:    thread.GetId(),
		AssistantId: assistant.GetId(),
	})
	if err != nil {
		return err
	}
	if _, _, err := c.runToCompletion(ctx, stream); err != nil {
		return err
	}

	// Ask again with a function the model may call for this run.
	if err := c.addMessage(ctx, thread.GetId(), "What is the weather in Paris?"); err != nil {
		return err
	}
	fmt.Println("asking about the weather, with get_weather:")
	tool, err := weatherTool()
	if err != nil {
		return err
	}
	stream, err = c.runs.RunThreadStream(ctx, &assistantsv1.RunThreadStreamRequest{
		ThreadId:    thread.GetId(),
		AssistantId: assistant.GetId(),
		Tools:       []*assistantsv1.Tool{tool},
	})
	if err != nil {
		return err
	}
	calls, answer, err := c.runToCompletion(ctx, stream)
	if err != nil {
		return err
	}
	if calls == 0 {
		return fmt.Errorf("model %s answered without calling get_weather", c.model)
	}
	fmt.Printf("final answer: %s\n", answer)
	return nil
}

func (c clients) addMessage(ctx context.Context, threadID, text string) error {
	_, err := c.messages.CreateMessage(ctx, &assistantsv1.CreateMessageRequest{
		ThreadId: threadID,
		Role:     "user",
		Content:  &assistantsv1.CreateMessageRequest_Text{Text: text},
	})
	return err
}

// runToCompletion follows a run through its function calls: each time it
// waits for tool outputs, it calls the functions and submits their outputs,
// streaming on. It returns how many calls were answered and the text of the
// last reply.
func (c clients) runToCompletion(ctx context.Context, stream eventStream) (int, string, error) {
	run, text, err := followRun(stream)
	if err != nil {
		return 0, "", err
	}
	calls := 0
	for run.GetStatus() == "requires_action" {
		toolCalls := run.GetRequiredAction().GetSubmitToolOutputs().GetToolCalls()
		outputs := make([]*assistantsv1.ToolOutput, 0, len(toolCalls))
		for _, call := range toolCalls {
			name, arguments := call.GetFunction().GetName(), call.GetFunction().GetArguments()
			output := callFunction(name, arguments)
			fmt.Printf("tool call %s: %s(%s) -> %s\n", call.GetId(), name, arguments, output)
			outputs = append(outputs, &assistantsv1.ToolOutput{ToolCallId: call.GetId(), Output: output})
		}
		calls += len(outputs)
		submitted, err := c.runs.SubmitToolOutputsStream(ctx, &assistantsv1.SubmitToolOutputsStreamRequest{
			ThreadId:    run.GetThreadId(),
			RunId:       run.GetId(),
			ToolOutputs: outputs,
		})
		if err != nil {
			return 0, "", err
		}
		if run, text, err = followRun(submitted); err != nil {
			return 0, "", err
		}
	}
	if err := requireCompleted(run); err != nil {
		return 0, "", err
	}
	return calls, text, nil
}

// weatherTool is the function the model may call, as a tool of the run.
func weatherTool() (*assistantsv1.Tool, error) {
	parameters, err := structpb.NewStruct(map[string]interface{}{
		"type": "object",
		"properties": map[string]interface{}{
			"city": map[string]interface{}{"type": "string", "description": "The city's name."},
		},
		"required": []interface{}{"city"},
	})
	if err != nil {
		return nil, err
	}
	return &assistantsv1.Tool{
		Type: "function",
		Tool: &assistantsv1.Tool_Function{Function: &assistantsv1.FunctionTool{
			Name:        "get_weather",
			Description: "The current weather in a city.",
			Parameters:  parameters,
		}},
	}, nil
}

// followRun prints text deltas as they arrive and returns the run as the
// stream last reported it, with the whole text written during the stream.
func followRun(stream eventStream) (*assistantsv1.Run, string, error) {
	var run *assistantsv1.Run
	var text strings.Builder
	for {
		event, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, "", err
		}
		switch data := event.GetData().(type) {
		case *assistantsv1.RunStreamEvent_MessageDelta:
			for _, part := range data.MessageDelta.GetDelta().GetContent() {
				if delta, ok := part.GetPart().(*assistantsv1.MessageContentDelta_Text); ok {
					fmt.Print(delta.Text.GetValue())
					text.WriteString(delta.Text.GetValue())
				}
			}
		case *assistantsv1.RunStreamEvent_Run:
			run = data.Run
		case *assistantsv1.RunStreamEvent_Error:
			return nil, "", fmt.Errorf("stream error %s: %s", data.Error.GetCode(), data.Error.GetMessage())
		}
	}
	if text.Len() > 0 {
		fmt.Println()
	}
	if run == nil {
		return nil, "", errors.New("the stream ended without a run event")
	}
	return run, text.String(), nil
}

func requireCompleted(run *assistantsv1.Run) error {
	if run.GetStatus() == "completed" {
		return nil
	}
	reason := ""
	if lastError := run.GetLastError(); lastError != nil {
		reason = fmt.Sprintf(": %s %s", lastError.GetCode(), lastError.GetMessage())
	}
	return fmt.Errorf("run %s ended %s%s", run.GetId(), run.GetStatus(), reason)
}

func callFunction(name, argumentsJSON string) string {
	if name == "get_weather" {
		return getWeather(argumentsJSON)
	}
	output, _ := json.Marshal(map[string]string{"error": "no function named " + name})
	return string(output)
}

// getWeather is what the function returns; a real program would look the
// weather up.
func getWeather(argumentsJSON string) string {
	var args struct {
		City string `json:"city"`
	}
	if err := json.Unmarshal([]byte(argumentsJSON), &args); err != nil || args.City == "" {
		args.City = "unknown"
	}
	output, _ := json.Marshal(map[string]interface{}{
		"city": args.City, "temperature_c": 21, "conditions": "sunny",
	})
	return string(output)
}

func envOr(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}
