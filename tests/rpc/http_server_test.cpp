// The HTTP server over real loopback sockets: routing, limits, asynchronous answers, SSE with a
// client that disconnects, and shutdown with requests in flight.
#include "rpc/http/http_server.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "rpc/kj_runtime.hpp"
#include "tests/support/http_client.hpp"

namespace aegaeon::rpc::http {
namespace {

using testing::HttpConnection;
using testing::http_request;
using namespace std::chrono_literals;

// A one-shot flag another thread can wait on with a deadline (no sleeps as synchronization).
class Latch {
 public:
  void set() {
    std::lock_guard lock(mutex_);
    set_ = true;
    cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return set_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool set_ = false;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = KjRuntime::start();
    ASSERT_TRUE(started.ok()) << started.error().message;
    runtime_ = std::move(*started);
  }
  void TearDown() override {
    server_.reset();
    for (auto& t : threads_) t.join();
    runtime_.reset();
  }
  void start(HttpRouter router, HttpServerOptions options = {}) {
    auto server = HttpServer::start(*runtime_, std::move(options), std::move(router));
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = std::move(*server);
  }
  uint16_t port() const { return server_->port(); }

  std::unique_ptr<KjRuntime> runtime_;
  std::unique_ptr<HttpServer> server_;
  std::vector<std::thread> threads_;
};

TEST_F(HttpServerTest, RoutesByPathAndMethod) {
  HttpRouter router;
  router.add("GET", "/hello", [](const HttpRequest& request, const Responder& responder) {
    responder.respond(HttpResponse::text(200, "hi " + request.query));
  });
  start(std::move(router));

  auto ok = http_request(port(), "GET", "/hello?x=1");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, "hi x=1");

  auto missing = http_request(port(), "GET", "/nope");
  EXPECT_EQ(missing.status, 404);
  auto error = nlohmann::json::parse(missing.body);
  EXPECT_EQ(error["error"]["type"], "invalid_request_error");

  auto wrong_method = http_request(port(), "POST", "/hello", "{}");
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_EQ(wrong_method.header("allow"), "GET");
}

// Prefix routes (per-model admin routes) take what no exact route takes; the longest prefix wins.
TEST(HttpRouter, PrefixRoutesYieldToExactRoutesAndLongerPrefixes) {
  HttpRouter router;
  Handler none = [](const HttpRequest&, const Responder&) {};
  router.add("GET", "/a/list", none);
  router.add_prefix("POST", "/a/", none);
  router.add_prefix("POST", "/a/b/", none);
  HttpResponse not_routed;
  // Handlers are told apart by address: the prefix path itself resolves to its own handler.
  const Handler* short_prefix = router.find("POST", "/a/", not_routed);
  const Handler* long_prefix = router.find("POST", "/a/b/", not_routed);
  ASSERT_NE(short_prefix, nullptr);
  ASSERT_NE(long_prefix, nullptr);
  EXPECT_NE(short_prefix, long_prefix);
  EXPECT_NE(router.find("GET", "/a/list", not_routed), nullptr);
  EXPECT_EQ(router.find("POST", "/a/x/drain", not_routed), short_prefix);
  EXPECT_EQ(router.find("POST", "/a/b/c", not_routed), long_prefix);
  EXPECT_EQ(router.find("GET", "/a/x", not_routed), nullptr);
  EXPECT_EQ(not_routed.status, 405);
  EXPECT_EQ(router.find("POST", "/b", not_routed), nullptr);
  EXPECT_EQ(not_routed.status, 404);
}

TEST_F(HttpServerTest, RejectsOversizeBodiesWith413) {
  HttpRouter router;
  router.add("POST", "/echo", [](const HttpRequest& request, const Responder& responder) {
    responder.respond(HttpResponse::text(200, request.body));
  });
  HttpServerOptions options;
  options.max_body_bytes = 100;
  start(std::move(router), options);

  EXPECT_EQ(http_request(port(), "POST", "/echo", std::string(100, 'a')).status, 200);
  auto too_big = http_request(port(), "POST", "/echo", std::string(101, 'a'));
  EXPECT_EQ(too_big.status, 413);
  EXPECT_NE(too_big.body.find("limit of 100 bytes"), std::string::npos) << too_big.body;

  // A chunked body has no Content-Length: the limit applies while reading.
  HttpConnection chunked(port());
  std::string body(150, 'b');
  chunked.send_raw("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n96\r\n" +
                   body + "\r\n0\r\n\r\n");
  auto head = chunked.read_head();
  EXPECT_EQ(head.status, 413);
}

TEST_F(HttpServerTest, RejectsOversizeHeadersWith431) {
  HttpRouter router;
  router.add("GET", "/x", [](const HttpRequest&, const Responder& responder) {
    responder.respond(HttpResponse::text(200, "ok"));
  });
  HttpServerOptions options;
  options.max_header_bytes = 256;
  start(std::move(router), options);
  EXPECT_EQ(http_request(port(), "GET", "/x", {}, {{"X-Small", "1"}}).status, 200);
  auto big = http_request(port(), "GET", "/x", {}, {{"X-Big", std::string(300, 'h')}});
  EXPECT_EQ(big.status, 431);
}

TEST_F(HttpServerTest, AnswersFromAnotherThread) {
  HttpRouter router;
  router.add("POST", "/later", [this](const HttpRequest& request, const Responder& responder) {
    threads_.emplace_back([responder, body = request.body] {
      responder.respond(HttpResponse::json(202, R"({"got":")" + body + "\"}"));
    });
  });
  start(std::move(router));
  auto response = http_request(port(), "POST", "/later", "abc");
  EXPECT_EQ(response.status, 202);
  EXPECT_EQ(nlohmann::json::parse(response.body)["got"], "abc");
}

TEST_F(HttpServerTest, DroppedResponderAnswers500InsteadOfHanging) {
  HttpRouter router;
  router.add("GET", "/forget", [](const HttpRequest&, const Responder&) {});
  router.add("GET", "/throw", [](const HttpRequest&, const Responder&) {
    throw std::runtime_error("boom");
  });
  start(std::move(router));
  EXPECT_EQ(http_request(port(), "GET", "/forget").status, 500);
  EXPECT_EQ(http_request(port(), "GET", "/throw").status, 500);
}

TEST_F(HttpServerTest, StreamsServerSentEvents) {
  HttpRouter router;
  router.add("GET", "/events", [this](const HttpRequest&, const Responder& responder) {
    auto stream = responder.open_stream();
    threads_.emplace_back([stream] {
      for (int i = 0; i < 5; ++i) stream.send("{\"i\":" + std::to_string(i) + "}");
      stream.send("two\nlines");
      stream.send("[DONE]");
      stream.close();
    });
  });
  start(std::move(router));

  HttpConnection connection(port());
  connection.send_request("GET", "/events");
  auto head = connection.read_head();
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-type"), "text/event-stream");
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(connection.read_event(), "{\"i\":" + std::to_string(i) + "}");
  }
  EXPECT_EQ(connection.read_event(), "two\nlines");
  EXPECT_EQ(connection.read_event(), "[DONE]");
  EXPECT_EQ(connection.read_event(), std::nullopt);
}

TEST_F(HttpServerTest, ClientDisconnectCancelsTheStream) {
  Latch cancelled;
  Latch producer_stopped;
  std::atomic<int> sent_after_cancel{0};
  HttpRouter router;
  router.add("GET", "/events", [&, this](const HttpRequest&, const Responder& responder) {
    auto stream = responder.open_stream();
    stream.on_cancel([&] { cancelled.set(); });
    threads_.emplace_back([&, stream] {
      stream.send("first");
      stream.send("second");
      // Produce until the server reports the client gone (bounded: 10 s of 1 ms frames at most).
      for (int i = 0; i < 10000 && stream.send("tick"); ++i) {
        std::this_thread::sleep_for(1ms);  // pacing a producer, not synchronizing the test
      }
      if (!stream.send("after")) sent_after_cancel = 1;
      producer_stopped.set();
    });
  });
  start(std::move(router));

  {
    HttpConnection connection(port());
    connection.send_request("GET", "/events");
    ASSERT_EQ(connection.read_head().status, 200);
    EXPECT_EQ(connection.read_event(), "first");
    EXPECT_EQ(connection.read_event(), "second");
  }  // the client hangs up mid-stream
  EXPECT_TRUE(cancelled.wait()) << "on_cancel did not run after the client disconnected";
  EXPECT_TRUE(producer_stopped.wait()) << "send() kept accepting frames for a gone client";
  EXPECT_EQ(sent_after_cancel, 1);
}

TEST_F(HttpServerTest, ShutdownFinishesInFlightRequestsAndCancelsStuckStreams) {
  std::promise<Responder> pending_promise;
  auto pending = pending_promise.get_future();
  Latch stream_cancelled;
  HttpRouter router;
  router.add("GET", "/slow", [&](const HttpRequest&, const Responder& responder) {
    pending_promise.set_value(responder);
  });
  router.add("GET", "/stuck", [&](const HttpRequest&, const Responder& responder) {
    auto stream = responder.open_stream();
    stream.send("hello");
    stream.on_cancel([&] { stream_cancelled.set(); });
    threads_.emplace_back([stream, &stream_cancelled] { stream_cancelled.wait(10s); });
  });
  HttpServerOptions options;
  options.drain_timeout = 300ms;
  start(std::move(router), options);

  HttpConnection slow(port());
  slow.send_request("GET", "/slow");
  HttpConnection stuck(port());
  stuck.send_request("GET", "/stuck");
  ASSERT_EQ(stuck.read_head().status, 200);
  EXPECT_EQ(stuck.read_event(), "hello");
  ASSERT_EQ(pending.wait_for(5s), std::future_status::ready);

  // Answer the slow request while shutdown drains: it must still reach the client.
  auto responder = pending.get();
  std::thread answer([responder] {
    std::this_thread::sleep_for(50ms);  // let shutdown begin first
    responder.respond(HttpResponse::text(200, "done"));
  });
  auto started = std::chrono::steady_clock::now();
  server_->shutdown();
  auto took = std::chrono::steady_clock::now() - started;
  answer.join();

  auto slow_head = slow.read_head();
  slow.read_body(slow_head);
  EXPECT_EQ(slow_head.status, 200);
  EXPECT_EQ(slow_head.body, "done");
  EXPECT_TRUE(stream_cancelled.wait(2s)) << "the stuck stream was not cancelled by shutdown";
  EXPECT_LT(took, 5s);
  EXPECT_THROW(HttpConnection{port()}, std::runtime_error) << "still accepting after shutdown";
}

TEST_F(HttpServerTest, ReportsBindFailureNamingTheAddress) {
  start(HttpRouter{});
  HttpServerOptions options;
  options.port = port();  // already taken
  auto second = HttpServer::start(*runtime_, options, HttpRouter{});
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("127.0.0.1:" + std::to_string(port())), std::string::npos)
      << second.error().message;
}

}  // namespace
}  // namespace aegaeon::rpc::http
