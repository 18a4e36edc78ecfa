// The Quick Start against a running server: find or create an assistant, start
// a thread, stream a run's text as it is written, then let the model call a
// function and answer it with SubmitToolOutputsStream.
//
//   ASSISTANTS_GRPC_TARGET  host:port of the server (default 127.0.0.1:50051)
//   ASSISTANTS_API_KEY      sent as `authorization: Bearer <key>` when set
//   ASSISTANTS_MODEL        the model for new assistants (default scripted-demo)
//
// Exits non-zero when a call fails, a run does not complete, or the model makes
// no function call, so it doubles as a smoke test.

import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import {
  AssistantService,
  MessageService,
  RunService,
  ThreadService,
  type Run,
  type RunStreamEvent,
} from "../src/index.js";

const target = process.env["ASSISTANTS_GRPC_TARGET"] ?? "127.0.0.1:50051";
const apiKey = process.env["ASSISTANTS_API_KEY"];
const model = process.env["ASSISTANTS_MODEL"] ?? "scripted-demo";

// Runs on the scripted model finish in moments; the deadline only keeps a
// broken server from hanging the program.
const callOptions = { timeoutMs: 60_000 };

const authorization: Interceptor = (next) => async (request) => {
  if (apiKey) {
    request.header.set("authorization", `Bearer ${apiKey}`);
  }
  return next(request);
};

// gRPC runs over HTTP/2; connect-node's gRPC transport always uses it.
const transport = createGrpcTransport({
  baseUrl: target.includes("://") ? target : `http://${target}`,
  interceptors: [authorization],
});

const assistants = createClient(AssistantService, transport);
const threads = createClient(ThreadService, transport);
const messages = createClient(MessageService, transport);
const runs = createClient(RunService, transport);

class QuickstartError extends Error {}

// Prints text deltas as they arrive and returns the run as the stream last
// reported it, with the whole text written during the stream.
async function followRun(events: AsyncIterable<RunStreamEvent>): Promise<{ run: Run; text: string }> {
  let run: Run | undefined;
  let text = "";
  for await (const event of events) {
    switch (event.data.case) {
      case "messageDelta":
        for (const part of event.data.value.delta?.content ?? []) {
          if (part.part.case === "text" && part.part.value.value !== undefined) {
            process.stdout.write(part.part.value.value);
            text += part.part.value.value;
          }
        }
        break;
      case "run":
        run = event.data.value;
        break;
      case "error":
        throw new QuickstartError(`stream error ${event.data.value.code}: ${event.data.value.message}`);
      default:
        break;
    }
  }
  if (text !== "") {
    process.stdout.write("\n");
  }
  if (run === undefined) {
    throw new QuickstartError("the stream ended without a run event");
  }
  return { run, text };
}

function requireCompleted(run: Run): void {
  if (run.status !== "completed") {
    const reason = run.lastError ? `: ${run.lastError.code} ${run.lastError.message}` : "";
    throw new QuickstartError(`run ${run.id} ended ${run.status}${reason}`);
  }
}

// The function the model may call; a real program would look the weather up.
function getWeather(argumentsJson: string): string {
  const args = JSON.parse(argumentsJson || "{}") as { city?: unknown };
  const city = typeof args.city === "string" ? args.city : "unknown";
  return JSON.stringify({ city, temperature_c: 21, conditions: "sunny" });
}

async function streamedReply(): Promise<void> {
  const listed = await assistants.listAssistants({ limit: 20 }, callOptions);
  let assistant = listed.data.find((candidate) => candidate.model === model);
  if (assistant === undefined) {
    const created = await assistants.createAssistant(
      { model, name: "Quick Start", instructions: "You are a helpful assistant." },
      callOptions,
    );
    assistant = created.assistant;
  }
  if (assistant === undefined) {
    throw new QuickstartError("CreateAssistant returned no assistant");
  }
  console.log(`assistant ${assistant.id} (${listed.data.length} listed)`);

  const thread = (await threads.createThread({}, callOptions)).thread;
  if (thread === undefined) {
    throw new QuickstartError("CreateThread returned no thread");
  }
  await messages.createMessage(
    { threadId: thread.id, role: "user", content: { case: "text", value: "Hello! What can you do?" } },
    callOptions,
  );
  console.log(`thread ${thread.id}; streaming the reply:`);

  const { run } = await followRun(
    runs.runThreadStream({ threadId: thread.id, assistantId: assistant.id }, callOptions),
  );
  requireCompleted(run);
}

async function functionCall(): Promise<void> {
  const assistant = (
    await assistants.createAssistant(
      {
        model,
        name: "Quick Start weather",
        instructions: "Answer weather questions with the get_weather function.",
        tools: [
          {
            type: "function",
            tool: {
              case: "function",
              value: {
                name: "get_weather",
                description: "The current weather in a city.",
                parameters: {
                  type: "object",
                  properties: { city: { type: "string", description: "The city's name." } },
                  required: ["city"],
                },
              },
            },
          },
        ],
      },
      callOptions,
    )
  ).assistant;
  if (assistant === undefined) {
    throw new QuickstartError("CreateAssistant returned no assistant");
  }
  const thread = (
    await threads.createThread(
      { messages: [{ role: "user", content: { case: "text", value: "What is the weather in Paris?" } }] },
      callOptions,
    )
  ).thread;
  if (thread === undefined) {
    throw new QuickstartError("CreateThread returned no thread");
  }
  console.log(`assistant ${assistant.id} with get_weather, thread ${thread.id}:`);

  let { run, text } = await followRun(
    runs.runThreadStream({ threadId: thread.id, assistantId: assistant.id }, callOptions),
  );
  let calls = 0;
  // The model may call functions several times before it answers.
  while (run.status === "requires_action") {
    const toolCalls = run.requiredAction?.submitToolOutputs?.toolCalls ?? [];
    const toolOutputs: { toolCallId: string; output: string }[] = [];
    for (const call of toolCalls) {
      const output = getWeather(call.function?.arguments ?? "");
      console.log(`tool call ${call.id}: ${call.function?.name}(${call.function?.arguments}) -> ${output}`);
      toolOutputs.push({ toolCallId: call.id, output });
    }
    calls += toolCalls.length;
    ({ run, text } = await followRun(
      runs.submitToolOutputsStream({ threadId: thread.id, runId: run.id, toolOutputs }, callOptions),
    ));
  }
  requireCompleted(run);
  if (calls === 0) {
    throw new QuickstartError(`model ${model} answered without calling get_weather`);
  }
  console.log(`final answer: ${text}`);
}

try {
  await streamedReply();
  await functionCall();
} catch (error) {
  if (error instanceof ConnectError) {
    console.error(`quickstart: ${Code[error.code]}: ${error.rawMessage}`);
  } else if (error instanceof QuickstartError) {
    console.error(`quickstart: ${error.message}`);
  } else {
    throw error;
  }
  process.exitCode = 1;
}
