// The Quick Start against a running server: find or create an assistant, start
// a thread, add a message and stream the run's reply as it is written; then ask
// a question the assistant answers by calling a function, run the function
// here, submit its output with SubmitToolOutputsStream and print the answer.
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

// The function the model may call, as a tool of the run.
const weatherTool = {
  type: "function",
  tool: {
    case: "function" as const,
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
};

// What the function returns; a real program would look the weather up.
function getWeather(argumentsJson: string): string {
  let city = "unknown";
  try {
    const args = JSON.parse(argumentsJson || "{}") as { city?: unknown };
    if (typeof args.city === "string") {
      city = args.city;
    }
  } catch {
    // Arguments that are not JSON name no city.
  }
  return JSON.stringify({ city, temperature_c: 21, conditions: "sunny" });
}

function callFunction(name: string, argumentsJson: string): string {
  return name === "get_weather" ? getWeather(argumentsJson) : JSON.stringify({ error: `no function named ${name}` });
}

// Prints text deltas as they arrive and returns the run as the stream last
// reported it, with the whole text written during the stream.
async function printReply(events: AsyncIterable<RunStreamEvent>): Promise<{ run: Run; text: string }> {
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

// Follows a run through its function calls: each time it waits for tool
// outputs, calls the functions and submits their outputs, streaming on.
// Returns how many calls were answered and the text of the last reply.
async function runToCompletion(events: AsyncIterable<RunStreamEvent>): Promise<{ calls: number; text: string }> {
  let { run, text } = await printReply(events);
  let calls = 0;
  while (run.status === "requires_action") {
    const toolOutputs: { toolCallId: string; output: string }[] = [];
    for (const call of run.requiredAction?.submitToolOutputs?.toolCalls ?? []) {
      const name = call.function?.name ?? "";
      const args = call.function?.arguments ?? "";
      const output = callFunction(name, args);
      console.log(`tool call ${call.id}: ${name}(${args}) -> ${output}`);
      toolOutputs.push({ toolCallId: call.id, output });
    }
    calls += toolOutputs.length;
    ({ run, text } = await printReply(
      runs.submitToolOutputsStream({ threadId: run.threadId, runId: run.id, toolOutputs }, callOptions),
    ));
  }
  if (run.status !== "completed") {
    const reason = run.lastError ? `: ${run.lastError.code} ${run.lastError.message}` : "";
    throw new QuickstartError(`run ${run.id} ended ${run.status}${reason}`);
  }
  return { calls, text };
}

async function main(): Promise<void> {
  // Get the assistant: the first one on the model, or a new one.
  const listed = await assistants.listAssistants({}, callOptions);
  let assistant = listed.data.find((candidate) => candidate.model === model);
  if (assistant === undefined) {
    assistant = (
      await assistants.createAssistant(
        { model, name: "Quick Start", instructions: "You are a helpful assistant." },
        callOptions,
      )
    ).assistant;
  }
  if (assistant === undefined) {
    throw new QuickstartError("CreateAssistant returned no assistant");
  }
  console.log(`assistant ${assistant.id} (${listed.data.length} listed)`);

  // Create a thread, add a message, run the assistant and stream its reply.
  const thread = (await threads.createThread({}, callOptions)).thread;
  if (thread === undefined) {
    throw new QuickstartError("CreateThread returned no thread");
  }
  await messages.createMessage(
    { threadId: thread.id, role: "user", content: { case: "text", value: "Hello! What can you do?" } },
    callOptions,
  );
  console.log(`thread ${thread.id}; streaming the reply:`);
  await runToCompletion(runs.runThreadStream({ threadId: thread.id, assistantId: assistant.id }, callOptions));

  // Ask again with a function the model may call for this run.
  await messages.createMessage(
    { threadId: thread.id, role: "user", content: { case: "text", value: "What is the weather in Paris?" } },
    callOptions,
  );
  console.log("asking about the weather, with get_weather:");
  const { calls, text } = await runToCompletion(
    runs.runThreadStream({ threadId: thread.id, assistantId: assistant.id, tools: [weatherTool] }, callOptions),
  );
  if (calls === 0) {
    throw new QuickstartError(`model ${model} answered without calling get_weather`);
  }
  console.log(`final answer: ${text}`);
}

try {
  await main();
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
