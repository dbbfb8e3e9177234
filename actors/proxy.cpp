#include "actors/proxy.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <random>
#include <set>
#include <unordered_map>

#include "actors/model_catalog.hpp"
#include "actors/serving_atoms.hpp"
#include "actors/serving_metrics.hpp"
#include "text/tokenizer_incremental_decoder.hpp"
#include "text/tool_calls.hpp"
#include "rpc/http/openai_api.hpp"

namespace aegaeon::actors {
namespace {

using Clock = std::chrono::steady_clock;
namespace openai = rpc::http::openai;

struct Response;

// One generation — a choice of a response — between admission and its last token.
struct Active {
  Response* response = nullptr;        // the response it is a choice of (which outlives it)
  std::int32_t index = 0;              // the choice's index in the response
  ModelSeries* series = nullptr;       // the model's metric series
  openai::ResponseFormatter format;
  text::IncrementalDecoder decoder;
  std::vector<std::int32_t> echo;      // echo: the prompt, returned before the first token
  std::string text;                    // everything released to the client so far
  std::string held;                    // decoded text held back: it may start a stop string
  std::vector<openai::TokenOut> unsent;  // tokens whose text is not yet released (streaming)
  std::vector<openai::TokenOut> all_tokens;  // for non-streaming logprobs
  std::optional<text::ToolCallScanner> tool_calls;  // the request offered tools: calls are not content
  std::int64_t completion_tokens = 0;
  Clock::time_point arrival = Clock::now();
  std::optional<Clock::time_point> first_token;
  Clock::time_point last_token;
  double max_gap_s = 0;
};

// One HTTP request between admission and its answer: n choices for each of its prompts, each its
// own generation, answered together (a stream ends when the last choice has).
struct Response {
  core::RequestId key = 0;  // its first generation's id
  core::GenerationRequest request;
  const CatalogEntry* model = nullptr;
  rpc::http::Responder responder;
  openai::ResponseFormatter format;  // the response's own parts: the complete body, usage
  std::optional<rpc::http::EventStream> stream;
  std::vector<core::RequestId> generations;  // by choice index
  std::vector<openai::Choice> choices;       // non-streaming: each as it ends
  std::size_t unfinished = 0;
  openai::Usage usage;
};

struct ProxyState {
  std::shared_ptr<const ModelCatalog> catalog;
  policy::Slo slo;
  std::shared_ptr<ServingMetrics> metrics;
  caf::actor prefill;
  caf::actor decode;
  core::RequestId next_id = 1;
  std::unordered_map<core::RequestId, Response> responses;  // by their first generation's id
  std::unordered_map<core::RequestId, Active> active;
  std::unordered_map<core::ModelId, ModelSeries> series;  // looked up on a model's first request
  std::unordered_map<std::string, std::pair<std::int64_t, std::int64_t>> slo_met;  // model → (met, all)
  std::int32_t max_prompt_tokens = 0;  // 0: the model's context only
  std::set<core::ModelId> draining;   // models refusing new requests (admin drain)
  std::set<core::ModelId> unloaded;   // models whose weights left the node (admin unload)
  std::mt19937_64 seeds{std::random_device{}()};
  static inline const char* name = "proxy";
};

using ProxyActor = caf::stateful_actor<ProxyState>;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// What the API reports for a token in logprobs: the bytes it stands for in the text.
std::string token_string(const CatalogEntry& model, std::int32_t token) { return model.tokenizer.token_bytes(token); }

// A position's most likely tokens as the API reports them (generated or, with echo, prompt ones).
std::vector<openai::TopToken> top_tokens(const CatalogEntry& model, const std::vector<core::TokenLogprob>& alternatives) {
  std::vector<openai::TopToken> out;
  out.reserve(alternatives.size());
  for (const auto& alt : alternatives) out.push_back({token_string(model, alt.token), alt.logprob});
  return out;
}

// The error naming `field` when `token` is not in the model's vocabulary.
core::Result<void> check_in_vocabulary(const CatalogEntry& model, std::int32_t token, const std::string& field) {
  const auto vocab = model.tokenizer.vocab_size();
  if (token >= 0 && static_cast<std::size_t>(token) < vocab) return core::ok();
  return core::Error{core::ErrorCode::kInvalidArgument,
                     "'" + field + "' holds token id " + std::to_string(token) + ", outside model '" + model.name +
                         "''s vocabulary of " + std::to_string(vocab),
                     field};
}

// Structured outputs: what the answer must be — response_format's JSON, or a forced tool call in
// the model's call format — and where its grammar over the model's vocabulary starts (null when
// the answer may be anything). The answer ends with one of the model's end-of-sequence tokens,
// so a request must leave them in place.
struct ConstrainedOutput {
  core::StructuredOutput output;
  std::shared_ptr<const core::TokenConstraint> start;
};
core::Result<ConstrainedOutput> constrain_output(const core::GenerationRequest& request, const CatalogEntry& model) {
  ConstrainedOutput c{request.sampling.structured, nullptr};
  std::string field = "response_format";
  std::string path = "response_format.json_schema.schema";
  if (request.forced_tool) {
    AEGAEON_TRY_ASSIGN(call, text::forced_tool_call(model.chat_template->tool_call_format(), request.tools,
                                                    *request.forced_tool));
    c.output = std::move(call);
    field = path = "tool_choice";
  }
  if (c.output.empty()) return c;
  if (request.ignore_eos || model.eos_ids.empty()) {
    return core::Error{core::ErrorCode::kInvalidArgument,
                       request.ignore_eos ? "'" + field + "' needs the end-of-sequence token to end the answer; it "
                                            "cannot be combined with 'ignore_eos'"
                                          : "model '" + model.name + "' names no end-of-sequence token to end "
                                            "a constrained answer with",
                       field};
  }
  AEGAEON_TRY_ASSIGN(start, model.constrain(c.output, path));
  c.start = std::move(start);
  return c;
}

// The token ids a request names besides its prompt (stop_token_ids, logit_bias) are the model's.
core::Result<void> check_token_ids(const core::GenerationRequest& request, const CatalogEntry& model) {
  for (std::size_t i = 0; i < request.stop_token_ids.size(); ++i) {
    AEGAEON_TRY(check_in_vocabulary(model, request.stop_token_ids[i], "stop_token_ids[" + std::to_string(i) + "]"));
  }
  for (const auto& entry : request.sampling.logit_bias) {
    AEGAEON_TRY(check_in_vocabulary(model, entry.first, "logit_bias." + std::to_string(entry.first)));
  }
  return core::ok();
}

// The tokens of a request's prompts (a chat's one), or the error the client gets.
core::Result<std::vector<std::vector<std::int32_t>>> tokenize(const core::GenerationRequest& request,
                                                              const CatalogEntry& model) {
  if (request.api == core::GenerationRequest::Api::kCompletion) {
    std::vector<std::vector<std::int32_t>> prompts;
    for (const auto& prompt : request.prompts) {
      if (prompt.token_ids.empty()) {
        prompts.push_back(model.tokenizer.encode(prompt.text, /*add_special_tokens=*/true));
        continue;
      }
      for (std::int32_t id : prompt.token_ids) AEGAEON_TRY(check_in_vocabulary(model, id, "prompt"));
      prompts.push_back(prompt.token_ids);
    }
    return prompts;
  }
  if (!model.chat_template) {
    core::Error e{core::ErrorCode::kInvalidArgument,
                  "model '" + model.name + "' cannot chat (" + model.no_chat_template_reason + "); use /v1/completions",
                  "model"};
    return e;
  }
  if (!request.tools.empty()) {
    // Tools the template would drop, or calls we could not read back, would fail silently.
    if (!model.chat_template->renders_tools()) {
      return core::Error{core::ErrorCode::kInvalidArgument,
                         "model '" + model.name + "''s chat template does not render tools", "tools"};
    }
    if (model.chat_template->tool_call_format() == text::ToolCallFormat::kNone) {
      return core::Error{core::ErrorCode::kInvalidArgument,
                         "model '" + model.name + "' writes tool calls in a format this server does not parse yet",
                         "tools"};
    }
  }
  auto prompt = model.chat_template->render(request.messages, /*add_generation_prompt=*/true,
                                            request.chat_template_kwargs, request.tools);
  if (!prompt.ok()) {
    core::Error e = prompt.error();
    e.code = core::ErrorCode::kInvalidArgument;
    if (e.field.empty()) e.field = "messages";
    return e;
  }
  // The template writes BOS itself where the model wants it (as transformers encodes chats).
  return std::vector<std::vector<std::int32_t>>{model.tokenizer.encode(*prompt, /*add_special_tokens=*/false)};
}

// Length of the longest suffix of `text` that is a proper prefix of some stop string.
size_t stop_prefix_suffix(const std::string& text, const std::vector<std::string>& stops) {
  size_t keep = 0;
  for (const auto& stop : stops) keep = std::max(keep, text::partial_match_length(text, stop));
  return keep;
}

// What of `text` is content now: all of it, unless the request offered tools, whose calls the
// scanner holds back (finish() sends them).
std::string content_of(Active& a, std::string text) {
  return a.tool_calls ? a.tool_calls->feed(text) : std::move(text);
}

void send_chunk(Active& a, std::string piece) {
  a.text += piece;
  Response& r = *a.response;
  if (!r.stream) return;
  if (piece.empty() && !(r.request.logprobs && !a.unsent.empty())) return;
  // The chunk's text is what was released now; its tokens are those not yet reported.
  std::vector<openai::TokenOut> tokens = std::move(a.unsent);
  a.unsent.clear();
  if (tokens.empty()) {  // held text released at the end: no token of its own
    r.stream->send(a.format.text_chunk(piece));
    return;
  }
  tokens.front().text = std::move(piece);
  for (size_t i = 1; i < tokens.size(); ++i) tokens[i].text.clear();
  r.stream->send(a.format.chunk(tokens));
}

// The generation `a` ends: its metrics, and (unless the device already let go of it after a stop
// token or its length) a cancel to prefill and decode. `outcome` labels the requests counter.
void end_generation(ProxyActor* self, core::RequestId id, Active& a, core::FinishReason reason,
                    const std::string& outcome) {
  auto& s = self->state;
  const std::string& model_name = a.response->model->name;
  auto now = Clock::now();
  a.series->e2e_s.Observe(seconds(now - a.arrival));
  s.metrics->requests.Add(model_labels(model_name, {{"finished_reason", outcome}})).Increment();
  (a.first_token ? a.series->running : a.series->waiting).Decrement();
  if (reason == core::FinishReason::kStop || reason == core::FinishReason::kLength) {
    // Request-level attainment (DistServe/vLLM --goodput style): TTFT and mean TPOT within SLO.
    double ttft = a.first_token ? seconds(*a.first_token - a.arrival) : 1e9;
    double tpot = a.completion_tokens > 1
                      ? seconds(a.last_token - *a.first_token) / double(a.completion_tokens - 1)
                      : 0.0;
    if (a.response->request.max_tokens == 0) ttft = 0;  // echo scoring its prompt only: no token to wait for
    auto& [met, all] = s.slo_met[model_name];
    met += (ttft <= s.slo.ttft_s && tpot <= s.slo.tbt_s) ? 1 : 0;
    all += 1;
    a.series->slo_attainment.Set(double(met) / double(all));
  }
  if (reason != core::FinishReason::kLength && reason != core::FinishReason::kError) {
    // Stop string, EOS or cancellation: make sure prefill and decode let go of it.
    self->send(s.prefill, cancel_atom::value, id);
    self->send(s.decode, cancel_atom::value, id);
  }
}

// Ends a whole response early: `error` goes to the client (none when it went away), every
// choice still running is cancelled.
void abandon(ProxyActor* self, core::RequestId key, const std::optional<rpc::http::HttpResponse>& error,
             const std::string& outcome) {
  auto& s = self->state;
  auto found = s.responses.find(key);
  if (found == s.responses.end()) return;
  Response& r = found->second;
  if (error && r.stream) {
    r.stream->send(error->body);
    r.stream->send("[DONE]");
    r.stream->close();
  } else if (error) {
    r.responder.respond(*error);
  } else if (r.stream) {
    r.stream->close();
  }
  for (core::RequestId id : r.generations) {
    auto it = s.active.find(id);
    if (it == s.active.end()) continue;
    end_generation(self, id, it->second, core::FinishReason::kCancelled, outcome);
    s.active.erase(it);
  }
  s.responses.erase(found);
}

// Generation `id` ended with `reason`: its last text and calls go out, and with the response's
// last choice the answer (or the stream's end). An error or a cancel ends the whole response.
void finish(ProxyActor* self, core::RequestId id, core::FinishReason reason, const std::string& error = {}) {
  auto& s = self->state;
  auto it = s.active.find(id);
  if (it == s.active.end()) return;
  Active& a = it->second;
  Response& r = *a.response;
  const core::RequestId key = r.key;
  if (!error.empty() || reason == core::FinishReason::kCancelled) {
    end_generation(self, id, a, reason, core::to_string(reason));
    s.active.erase(it);
    if (error.empty()) return abandon(self, key, std::nullopt, "cancelled");
    return abandon(self, key, openai::error_response(core::error(core::ErrorCode::kInternal, error)), "cancelled");
  }
  // Text held because it might start a stop string is released: a matched stop string has
  // already emptied `held` (on_tokens), so what is left here ended with a stop token (EOS or a
  // stop_token_id) or the length limit.
  // The decoder's partial character is flushed unless the generation stopped (after a stop
  // string, those bytes would be text beyond it).
  std::string rest = a.held + (reason == core::FinishReason::kStop ? "" : a.decoder.flush());
  a.held.clear();
  std::vector<core::ToolCall> calls;
  if (a.tool_calls) {
    rest = content_of(a, std::move(rest));
    auto scanned = a.tool_calls->finish();
    rest += scanned.content;
    for (auto& call : scanned.calls) {
      if (!calls.empty() && !r.request.parallel_tool_calls) break;
      calls.push_back({"call_" + std::to_string(id) + "_" + std::to_string(calls.size()), std::move(call.name),
                       std::move(call.arguments)});
    }
  }
  if (!rest.empty() || !a.unsent.empty()) send_chunk(a, std::move(rest));
  r.usage.completion_tokens += a.completion_tokens;
  if (r.stream) {
    if (!calls.empty()) r.stream->send(a.format.tool_calls_chunk(calls));
    r.stream->send(a.format.finish_chunk(reason, !calls.empty()));
  } else {
    r.choices[static_cast<std::size_t>(a.index)] = {std::move(a.text), std::move(a.all_tokens), reason, std::move(calls)};
  }
  end_generation(self, id, a, reason, core::to_string(reason));
  s.active.erase(it);
  if (--r.unfinished > 0) return;
  if (r.stream) {
    if (r.request.include_usage) r.stream->send(r.format.usage_chunk(r.usage));
    r.stream->send("[DONE]");
    r.stream->close();
  } else {
    rpc::http::HttpResponse response;
    response.body = r.format.full_response(r.choices, r.usage);
    r.responder.respond(std::move(response));
  }
  s.responses.erase(key);  // not r.key: the erase destroys it
}

// Echo: the prompt goes out before the first token, as text and, with logprobs, as tokens
// scored by the device (the first has nothing before it).
void echo_prompt(Active& a, const TokenEvent& event) {
  const Response& r = *a.response;
  text::IncrementalDecoder decoder(r.model->tokenizer, r.request.skip_special_tokens);
  std::string text;
  std::vector<openai::TokenOut> tokens;
  for (std::size_t i = 0; i < a.echo.size(); ++i) {
    std::string piece = decoder.step(a.echo[i]);
    text += piece;
    if (!r.request.logprobs) continue;
    openai::TokenOut out{std::move(piece), std::nullopt, token_string(*r.model, a.echo[i]), {}};
    if (i > 0 && i - 1 < event.prompt_logprobs.size()) out.logprob = event.prompt_logprobs[i - 1];
    if (i > 0 && i - 1 < event.prompt_top_logprobs.size()) out.top = top_tokens(*r.model, event.prompt_top_logprobs[i - 1]);
    tokens.push_back(std::move(out));
  }
  std::string rest = decoder.flush();
  text += rest;
  if (!tokens.empty()) tokens.back().text += rest;
  a.echo.clear();
  a.unsent = tokens;
  a.all_tokens = std::move(tokens);
  send_chunk(a, std::move(text));
}

void on_tokens(ProxyActor* self, TokenEvent& event) {
  auto& s = self->state;
  auto it = s.active.find(event.id);
  if (it == s.active.end()) return;  // finished or cancelled already
  Active& a = it->second;
  const core::GenerationRequest& request = a.response->request;
  const CatalogEntry& model = *a.response->model;
  auto now = Clock::now();
  ModelSeries& series = *a.series;
  if (event.queue_s >= 0) series.queue_s.Observe(event.queue_s);
  if (!a.echo.empty() && event.error.empty()) echo_prompt(a, event);
  for (size_t i = 0; i < event.tokens.size(); ++i) {
    std::int32_t token = event.tokens[i];
    if (!a.first_token) {
      a.first_token = now;
      series.ttft_s.Observe(seconds(now - a.arrival));
      series.waiting.Decrement();
      series.running.Increment();
    } else {
      double gap = seconds(now - a.last_token);
      a.max_gap_s = std::max(a.max_gap_s, gap);
      series.inter_token_s.Observe(gap);
    }
    a.last_token = now;
    ++a.completion_tokens;
    series.generation_tokens.Increment();

    std::string piece = a.decoder.step(token);
    // A token's bytes are only reported with logprobs: not worth a decoder pass per token otherwise.
    openai::TokenOut out{piece, event.logprobs.at(i), request.logprobs ? token_string(model, token) : "", {}};
    if (i < event.top_logprobs.size()) out.top = top_tokens(model, event.top_logprobs[i]);
    a.unsent.push_back(out);
    a.all_tokens.push_back(std::move(out));
    a.held += piece;
    for (const auto& stop : request.stop) {
      auto pos = a.held.find(stop);
      // As vLLM: no stop string ends an answer of min_tokens tokens or fewer.
      if (pos != std::string::npos && a.completion_tokens > request.min_tokens) {
        send_chunk(a, content_of(a, a.held.substr(0, pos + (request.include_stop_str_in_output ? stop.size() : 0))));
        a.held.clear();
        finish(self, event.id, core::FinishReason::kStop);
        return;
      }
    }
    size_t keep = stop_prefix_suffix(a.held, request.stop);
    std::string release = a.held.substr(0, a.held.size() - keep);
    a.held.erase(0, a.held.size() - keep);
    release = content_of(a, std::move(release));
    if (!release.empty() || request.logprobs) send_chunk(a, std::move(release));
  }
  if (event.finished) {
    finish(self, event.id, event.error.empty() ? event.reason : core::FinishReason::kError, event.error);
  }
}

// The 400 for a prompt of `prompt_tokens` the model cannot take with this request's limits;
// else the most tokens a choice of it may generate.
core::Result<std::int32_t> check_prompt(const ProxyState& s, const core::GenerationRequest& request,
                                        const CatalogEntry& model, std::int32_t prompt_tokens) {
  const char* prompt_field = request.api == core::GenerationRequest::Api::kChat ? "messages" : "prompt";
  auto refuse = [](std::string message, const char* field) {
    return core::Error{core::ErrorCode::kInvalidArgument, std::move(message), field};
  };
  if (prompt_tokens == 0) return refuse("the prompt is empty (no tokens)", prompt_field);
  if (s.max_prompt_tokens > 0 && prompt_tokens > s.max_prompt_tokens) {
    return refuse("the prompt has " + std::to_string(prompt_tokens) + " tokens; this server accepts at most " +
                      std::to_string(s.max_prompt_tokens) + " (serve.max_prompt_tokens)",
                  prompt_field);
  }
  std::int32_t room = model.max_context_tokens - prompt_tokens;
  if (room < 1) {
    return refuse("the prompt has " + std::to_string(prompt_tokens) + " tokens; model '" + model.name +
                      "' has a context of " + std::to_string(model.max_context_tokens) + " tokens",
                  prompt_field);
  }
  if (request.max_tokens && *request.max_tokens > room) {
    return refuse("max_tokens " + std::to_string(*request.max_tokens) + " + " + std::to_string(prompt_tokens) +
                      " prompt tokens exceed the context of " + std::to_string(model.max_context_tokens),
                  "max_tokens");
  }
  const std::int32_t max_tokens = request.max_tokens.value_or(room);
  if (request.min_tokens > max_tokens) {
    return refuse("min_tokens " + std::to_string(request.min_tokens) + " is more than max_tokens " +
                      std::to_string(max_tokens) + (request.max_tokens ? "" : " (the context left after the prompt)"),
                  "min_tokens");
  }
  return max_tokens;
}

// Asks prefill to admit generation `id`; a refusal or a failure ends its whole response.
void admit(ProxyActor* self, core::RequestId id, PrefillJob job) {
  self->request(self->state.prefill, caf::infinite, admit_atom::value, std::move(job))
      .then(
          [self, id](const AdmissionReply& reply) {
            auto& st = self->state;
            auto it = st.active.find(id);
            if (it == st.active.end()) return;
            Response& r = *it->second.response;
            if (!reply.admitted) {
              core::Error e{core::ErrorCode::kResourceExhausted, "overloaded: " + reply.reason, {}};
              abandon(self, r.key, openai::error_response(e, static_cast<int>(std::ceil(reply.retry_after_s))),
                      "rejected");
              return;
            }
            if (r.request.stream && !r.stream) r.stream = r.responder.open_stream();
          },
          [self, id](caf::error& error) {
            finish(self, id, core::FinishReason::kError, "admission failed: " + self->system().render(error));
          });
}

// A new request: checked whole (every prompt) before any of its choices starts.
void on_submit(ProxyActor* self, core::GenerationRequest& request, const rpc::http::Responder& responder) {
  auto& s = self->state;
  const CatalogEntry* model = s.catalog->find(request.model);
  if (model == nullptr) {
    core::Error e{core::ErrorCode::kNotFound, "model '" + request.model + "' is not served here (see GET /v1/models)", "model"};
    responder.respond(openai::error_response(e));
    return;
  }
  if (s.unloaded.count(model->id) != 0) {
    core::Error e{core::ErrorCode::kNotFound, "model '" + model->name + "' is unloaded on this server for now", "model"};
    responder.respond(openai::error_response(e));
    return;
  }
  if (s.draining.count(model->id) != 0) {
    core::Error e{core::ErrorCode::kUnavailable,
                  "model '" + model->name + "' is draining: it takes no new requests for now", "model"};
    responder.respond(openai::error_response(e, kDrainRetryAfterS));
    return;
  }
  auto prompts = tokenize(request, *model);
  if (!prompts.ok()) {
    responder.respond(openai::error_response(prompts.error()));
    return;
  }
  std::vector<std::int32_t> max_tokens;
  for (const auto& prompt : *prompts) {
    auto checked = check_prompt(s, request, *model, static_cast<std::int32_t>(prompt.size()));
    if (!checked.ok()) {
      responder.respond(openai::error_response(checked.error()));
      return;
    }
    max_tokens.push_back(*checked);
  }
  if (auto checked = check_token_ids(request, *model); !checked.ok()) {
    responder.respond(openai::error_response(checked.error()));
    return;
  }
  auto constrained = constrain_output(request, *model);
  if (!constrained.ok()) {
    responder.respond(openai::error_response(constrained.error()));
    return;
  }

  const core::RequestId key = s.next_id;
  const auto created_s = static_cast<std::int64_t>(std::time(nullptr));
  auto formatter = [&](std::int32_t index) {
    return openai::ResponseFormatter(request.api, model->name, key, created_s, request.logprobs, index);
  };
  Response& r = s.responses.try_emplace(key, Response{key, request, model, responder, formatter(0)}).first->second;
  r.unfinished = prompts->size() * static_cast<std::size_t>(request.n);
  r.choices.resize(r.unfinished);
  ModelSeries* series = &s.series.try_emplace(model->id, *s.metrics, model->name).first->second;
  std::vector<std::pair<core::RequestId, PrefillJob>> jobs;
  for (std::size_t p = 0; p < prompts->size(); ++p) {
    const auto& prompt = (*prompts)[p];
    const auto prompt_tokens = static_cast<std::int32_t>(prompt.size());
    r.usage.prompt_tokens += prompt_tokens;
    series->prompt_tokens.Increment(prompt_tokens);
    for (std::int32_t j = 0; j < request.n; ++j) {
      const auto index = static_cast<std::int32_t>(r.generations.size());
      const core::RequestId id = s.next_id++;
      r.generations.push_back(id);
      PrefillJob job;
      job.info = policy::RequestInfo{id, model->id, 0.0, prompt_tokens, max_tokens[p]};
      job.prompt = prompt;
      job.stop.max_tokens = max_tokens[p];
      job.stop.min_tokens = request.min_tokens;
      job.stop.stop_token_ids = request.stop_token_ids;
      if (!request.ignore_eos) {
        job.stop.stop_token_ids.insert(job.stop.stop_token_ids.end(), model->eos_ids.begin(), model->eos_ids.end());
      }
      job.sampling = request.sampling;
      job.sampling.structured = constrained->output;
      job.constraint = constrained->start;
      // Drawn here, once: a generation resumed on another device or worker continues this
      // stream. With the request's own seed, choice i draws from seed + i: different choices,
      // the same ones on every run.
      job.sampling.seed = request.sampling.seed ? *request.sampling.seed + static_cast<std::uint64_t>(index) : s.seeds();

      Active a{&r, index, series, formatter(index),
               text::IncrementalDecoder(model->tokenizer, request.skip_special_tokens)};
      if (request.echo) a.echo = prompt;
      if (!request.tools.empty()) a.tool_calls.emplace(model->chat_template->tool_call_format());
      series->waiting.Increment();
      s.active.emplace(id, std::move(a));
      jobs.emplace_back(id, std::move(job));
    }
  }
  // Runs on the kj thread when the client goes away, whether it waits for a complete answer or
  // reads a stream: only a message is sent; abandon() then lets go of every choice.
  responder.on_cancel([proxy = caf::actor_cast<caf::actor>(self), key] {
    caf::anon_send(proxy, cancel_atom::value, key);
  });
  for (auto& [id, job] : jobs) admit(self, id, std::move(job));
}

// Applies an admin action, then reports every model's flags and requests in flight.
void on_admin(ProxyActor* self, FrontAction action, const std::string& model_name, const FrontReport& report) {
  auto& s = self->state;
  std::vector<FrontActivity> out;
  for (const auto& entry : s.catalog->entries()) {
    out.push_back({entry.name, s.draining.count(entry.id) != 0, s.unloaded.count(entry.id) != 0, 0, 0});
  }
  for (const auto& [id, a] : s.active) {
    auto& activity = out.at(static_cast<size_t>(a.response->model->id));
    ++(a.first_token ? activity.running : activity.waiting);
  }
  if (const CatalogEntry* model = s.catalog->find(model_name)) {
    auto& activity = out.at(static_cast<size_t>(model->id));
    switch (action) {
      case FrontAction::kReport:
        break;
      case FrontAction::kDrain:
      case FrontAction::kUndrain:
        activity.draining = action == FrontAction::kDrain;
        if (activity.draining) s.draining.insert(model->id); else s.draining.erase(model->id);
        spdlog::info("admin: model '{}' {}", model->name, activity.draining ? "draining" : "accepting requests");
        break;
      case FrontAction::kUnload:
      case FrontAction::kLoad:
        apply_unload_or_load(action, model->id, activity, s.unloaded);
        break;
    }
  }
  report(std::move(out));
}

caf::behavior proxy_actor(ProxyActor* self, std::shared_ptr<const ModelCatalog> catalog,
                          policy::Slo slo, std::shared_ptr<ServingMetrics> metrics,
                          std::int32_t max_prompt_tokens) {
  self->state.catalog = std::move(catalog);
  self->state.slo = slo;
  self->state.metrics = std::move(metrics);
  self->state.max_prompt_tokens = max_prompt_tokens;
  return {
      [self](wire_atom, caf::actor prefill, caf::actor decode) {
        self->state.prefill = std::move(prefill);
        self->state.decode = std::move(decode);
      },
      [self](submit_atom, core::GenerationRequest& request, const rpc::http::Responder& responder) {
        on_submit(self, request, responder);
      },
      [self](token_atom, std::vector<TokenEvent>& events) {
        for (auto& event : events) on_tokens(self, event);
      },
      [self](cancel_atom, core::RequestId key) { abandon(self, key, std::nullopt, "cancelled"); },
      [self](admin_atom, FrontAction action, const std::string& model, const FrontReport& report) {
        on_admin(self, action, model, report);
      },
  };
}

}  // namespace

caf::actor spawn_proxy(caf::actor_system& system, std::shared_ptr<const ModelCatalog> catalog,
                       policy::Slo slo, std::shared_ptr<ServingMetrics> metrics,
                       std::int32_t max_prompt_tokens) {
  return system.spawn(proxy_actor, std::move(catalog), slo, std::move(metrics), max_prompt_tokens);
}

void apply_unload_or_load(FrontAction action, core::ModelId model, FrontActivity& activity,
                          std::set<core::ModelId>& unloaded) {
  if (action == FrontAction::kUnload && activity.running + activity.waiting == 0) {
    unloaded.insert(model);
    activity.unloaded = true;
  } else if (action == FrontAction::kLoad) {
    unloaded.erase(model);
    activity.unloaded = false;
  }
}

void send_front_action(const caf::actor& proxy, FrontAction action, std::string model,
                       FrontReport report) {
  caf::anon_send(proxy, admin_atom::value, action, std::move(model), std::move(report));
}

void submit_generation(const caf::actor& proxy, core::GenerationRequest request,
                       const rpc::http::Responder& responder) {
  caf::anon_send(proxy, submit_atom::value, std::move(request), responder);
}

void wire_proxy(const caf::actor& proxy, const caf::actor& prefill, const caf::actor& decode) {
  caf::anon_send(proxy, wire_atom::value, prefill, decode);
}

}  // namespace aegaeon::actors
