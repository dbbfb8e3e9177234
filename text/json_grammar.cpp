#include "text/json_grammar.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>

namespace aegaeon::text {

namespace {

using json = nlohmann::ordered_json;  // properties keep the schema's order

constexpr std::uint32_t kUnbounded = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint32_t kMaxCount = std::numeric_limits<std::uint16_t>::max();  // Frame counters
constexpr std::size_t kMaxNodes = 8192;
constexpr std::size_t kMaxStacks = 256;  // alternatives read side by side; more are dropped

// kSequence: its `alternatives` one after the other (text around the JSON).
enum class Kind : std::uint8_t { kObject, kArray, kString, kNumber, kInteger, kLiteral, kAnyOf, kSequence };

// Phases (Frame::phase); 0 is "before the value" for every node.
enum : std::uint8_t { kBefore = 0 };
enum : std::uint8_t { kObjectOpen = 1, kObjectKey, kObjectColon, kObjectValue, kObjectNext, kObjectComma };
enum : std::uint8_t { kArrayOpen = 1, kArrayItem, kArrayNext };
enum : std::uint8_t { kLiteralIn = 1 };
enum : std::uint8_t { kStringIn = 1 };
enum : std::uint8_t { kMinus = 1, kZero, kInteger, kDot, kFraction, kExponentMark, kExponentSign, kExponent };
// String escape / UTF-8 state (Frame::b inside a string).
enum : std::uint16_t {
  kPlain = 0,
  kEscape = 1,
  kHex4 = 2, kHex3, kHex2, kHex1,            // \u and this many hex digits to go
  kTail1 = 9, kTail2, kTail3,                // UTF-8 continuation bytes to go
  kAfterE0 = 12, kAfterED, kAfterF0, kAfterF4,  // lead bytes whose next byte has a narrower range
  // \uD…: a UTF-16 surrogate must come as a pair (\uD800-\uDBFF then \uDC00-\uDFFF), as
  // strict parsers require.
  kHexD = 16, kHighHex2, kHighHex1, kPairBackslash, kPairU, kLowD, kLowC,
};

bool is_space(std::uint8_t c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
bool is_digit(std::uint8_t c) { return c >= '0' && c <= '9'; }
bool is_hex(std::uint8_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

}  // namespace

struct JsonGrammar::Node {
  struct Property {
    std::string key;  // the key as JSON text, quotes included
    std::uint16_t value = 0;
    bool required = false;
  };
  Kind kind = Kind::kAnyOf;
  std::vector<Property> properties;  // kObject: declared, in order
  int values = -1;                   // kObject without properties: every value's node (-1: none, only {})
  int items = -1;                    // kArray
  std::uint32_t min = 0;             // kArray items, kString code points
  std::uint32_t max = kUnbounded;
  std::vector<std::string> literals;        // kLiteral: JSON texts
  std::vector<std::uint16_t> alternatives;  // kAnyOf

  // Strings and arrays count code points or items only when a bound needs it, so an unbounded
  // one stays in one state (and its masks are computed once).
  [[nodiscard]] bool counts() const { return min > 0 || max != kUnbounded; }
  [[nodiscard]] bool may_close(std::uint16_t next_property) const {
    return std::none_of(properties.begin() + next_property, properties.end(),
                        [](const Property& p) { return p.required; });
  }
};

namespace {

using Node = JsonGrammar::Node;

core::Error refuse(const std::string& path, std::string message) {
  core::Error e = core::error(core::ErrorCode::kInvalidArgument, path + ": " + std::move(message));
  e.field = path;
  return e;
}

const std::set<std::string, std::less<>> kAnnotations = {"title", "description", "default", "examples", "$schema",
                                                         "$id", "$comment", "deprecated", "readOnly", "writeOnly",
                                                         "$defs", "definitions"};
const std::set<std::string, std::less<>> kConstraints = {"type", "properties", "required", "additionalProperties",
                                                         "items", "minItems", "maxItems", "minLength", "maxLength",
                                                         "enum", "const", "anyOf", "$ref"};

// Schema → nodes, depth first; $ref targets are compiled once (recursion goes through the
// node reserved for the reference).
class Compiler {
 public:
  // Node 0, where reading starts, refers to the root once it is compiled.
  explicit Compiler(const json& root) : nodes(1), root_(root) {}

  core::Result<std::uint16_t> compile(const json& schema, const std::string& path) {
    if (schema.is_boolean()) {
      if (schema.get<bool>()) return any();
      return refuse(path, "the schema false allows no value");
    }
    if (!schema.is_object()) return refuse(path, "a schema must be an object or a boolean");
    std::vector<std::string> constraints;
    for (auto it = schema.begin(); it != schema.end(); ++it) {
      if (kConstraints.count(it.key()) != 0) {
        constraints.push_back(it.key());
      } else if (kAnnotations.count(it.key()) == 0) {
        return refuse(path + "." + it.key(), "'" + it.key() + "' is not supported in structured outputs (supported: "
                                             "type, properties, required, additionalProperties, items, minItems, "
                                             "maxItems, minLength, maxLength, enum, const, anyOf, $ref)");
      }
    }
    const auto alone = [&](const char* keyword) -> core::Result<void> {
      if (constraints.size() > 1) {
        return refuse(path, std::string("'") + keyword + "' beside other keywords is not supported (put them inside it)");
      }
      return core::ok();
    };
    if (schema.contains("$ref")) {
      AEGAEON_TRY(alone("$ref"));
      return reference(schema["$ref"], path + ".$ref");
    }
    if (schema.contains("anyOf")) {
      AEGAEON_TRY(alone("anyOf"));
      const json& list = schema["anyOf"];
      if (!list.is_array() || list.empty()) return refuse(path + ".anyOf", "'anyOf' must be a non-empty array of schemas");
      Node node;
      for (std::size_t i = 0; i < list.size(); ++i) {
        AEGAEON_TRY_ASSIGN(alternative, compile(list[i], path + ".anyOf[" + std::to_string(i) + "]"));
        node.alternatives.push_back(alternative);
      }
      return add(std::move(node));
    }
    if (schema.contains("enum") || schema.contains("const")) {
      Node node;
      node.kind = Kind::kLiteral;
      if (schema.contains("const")) {
        node.literals.push_back(schema["const"].dump());
      } else {
        const json& values = schema["enum"];
        if (!values.is_array() || values.empty()) return refuse(path + ".enum", "'enum' must be a non-empty array");
        for (const json& value : values) node.literals.push_back(value.dump());
      }
      return add(std::move(node));
    }
    const json* type = schema.contains("type") ? &schema["type"] : nullptr;
    if (type == nullptr) {
      if (schema.contains("properties") || schema.contains("required") || schema.contains("additionalProperties")) {
        return typed("object", schema, path);
      }
      if (schema.contains("items")) return typed("array", schema, path);
      return any();
    }
    if (type->is_string()) return typed(type->get<std::string>(), schema, path);
    if (!type->is_array() || type->empty()) return refuse(path + ".type", "'type' must be a type name or a non-empty list of them");
    Node node;
    for (const json& name : *type) {
      if (!name.is_string()) return refuse(path + ".type", "'type' must list type names");
      AEGAEON_TRY_ASSIGN(alternative, typed(name.get<std::string>(), schema, path));
      node.alternatives.push_back(alternative);
    }
    return add(std::move(node));
  }

  std::vector<Node> nodes;

 private:
  core::Result<std::uint16_t> add(Node node) {
    if (nodes.size() >= kMaxNodes) return refuse("schema", "the schema is too large (at most 8192 values)");
    nodes.push_back(std::move(node));
    return static_cast<std::uint16_t>(nodes.size() - 1);
  }

  core::Result<std::uint32_t> count(const json& schema, const char* keyword, std::uint32_t fallback,
                                    const std::string& path) {
    if (!schema.contains(keyword)) return fallback;
    const json& v = schema[keyword];
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0) {
      return refuse(path + "." + keyword, std::string("'") + keyword + "' must be a non-negative integer");
    }
    // Counters are 16 bits: a longer maximum is enforced as 65535 (stricter, still valid).
    return static_cast<std::uint32_t>(std::min<std::int64_t>(v.get<std::int64_t>(), kMaxCount));
  }

  core::Result<std::uint16_t> typed(const std::string& type, const json& schema, const std::string& path) {
    Node node;
    if (type == "object") {
      node.kind = Kind::kObject;
      std::set<std::string> required;
      if (schema.contains("required")) {
        const json& names = schema["required"];
        if (!names.is_array()) return refuse(path + ".required", "'required' must be an array of property names");
        for (const json& name : names) {
          if (!name.is_string()) return refuse(path + ".required", "'required' must be an array of property names");
          required.insert(name.get<std::string>());
        }
      }
      if (schema.contains("properties")) {
        const json& properties = schema["properties"];
        if (!properties.is_object()) return refuse(path + ".properties", "'properties' must be an object of schemas");
        for (auto it = properties.begin(); it != properties.end(); ++it) {
          AEGAEON_TRY_ASSIGN(value, compile(it.value(), path + ".properties." + it.key()));
          node.properties.push_back({json(it.key()).dump(), value, required.erase(it.key()) != 0});
        }
      }
      if (!required.empty()) {
        return refuse(path + ".required", "'" + *required.begin() + "' is required but not among 'properties' "
                                          "(only declared properties are generated)");
      }
      if (node.properties.empty()) {
        const json additional = schema.contains("additionalProperties") ? schema["additionalProperties"] : json(true);
        if (!(additional.is_boolean() && !additional.get<bool>())) {
          AEGAEON_TRY_ASSIGN(values, compile(additional, path + ".additionalProperties"));
          node.values = values;
        }
      }
    } else if (type == "array") {
      node.kind = Kind::kArray;
      if (schema.contains("items")) {
        if (schema["items"].is_array()) return refuse(path + ".items", "'items' as a list (tuples) is not supported");
        AEGAEON_TRY_ASSIGN(items, compile(schema["items"], path + ".items"));
        node.items = items;
      } else {
        AEGAEON_TRY_ASSIGN(items, any());
        node.items = items;
      }
      AEGAEON_TRY_ASSIGN(min, count(schema, "minItems", 0, path));
      AEGAEON_TRY_ASSIGN(max, count(schema, "maxItems", kUnbounded, path));
      node.min = min;
      node.max = max;
    } else if (type == "string") {
      node.kind = Kind::kString;
      AEGAEON_TRY_ASSIGN(min, count(schema, "minLength", 0, path));
      AEGAEON_TRY_ASSIGN(max, count(schema, "maxLength", kUnbounded, path));
      node.min = min;
      node.max = max;
    } else if (type == "integer" || type == "number") {
      node.kind = type == "integer" ? Kind::kInteger : Kind::kNumber;
    } else if (type == "boolean" || type == "null") {
      node.kind = Kind::kLiteral;
      node.literals = type == "null" ? std::vector<std::string>{"null"} : std::vector<std::string>{"true", "false"};
    } else {
      return refuse(path + ".type", "unknown type '" + type + "'");
    }
    if (node.min > node.max) return refuse(path, "its minimum length or item count is above its maximum");
    if (node.min >= kMaxCount) return refuse(path, "a minimum length or item count must be below 65535");
    return add(std::move(node));
  }

  core::Result<std::uint16_t> reference(const json& ref, const std::string& path) {
    if (!ref.is_string()) return refuse(path, "'$ref' must be a string");
    const std::string target = ref.get<std::string>();
    if (auto found = refs_.find(target); found != refs_.end()) return found->second;
    const bool local = target == "#" || target.rfind("#/$defs/", 0) == 0 || target.rfind("#/definitions/", 0) == 0;
    if (!local) return refuse(path, "only references into this schema ('#', '#/$defs/…', '#/definitions/…') are supported");
    const json* schema = &root_;
    if (target != "#") {
      // A JSON pointer: "/"-separated, "~1" for "/" and "~0" for "~".
      std::string_view rest = std::string_view(target).substr(2);
      while (!rest.empty()) {
        const auto slash = rest.find('/');
        std::string token(rest.substr(0, slash));
        for (std::size_t at; (at = token.find("~1")) != std::string::npos;) token.replace(at, 2, "/");
        for (std::size_t at; (at = token.find("~0")) != std::string::npos;) token.replace(at, 2, "~");
        if (!schema->is_object() || !schema->contains(token)) return refuse(path, "'" + target + "' names nothing in the schema");
        schema = &(*schema)[token];
        rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
      }
    }
    // Reserved first, so a definition that refers to itself finds it; filled once compiled.
    AEGAEON_TRY_ASSIGN(reserved, add(Node{}));
    refs_[target] = reserved;
    AEGAEON_TRY_ASSIGN(compiled, compile(*schema, path + "(" + target + ")"));
    nodes[reserved].alternatives = {compiled};
    return reserved;
  }

  // Any JSON value (an absent `items`, a `true` schema, json_object's values).
  core::Result<std::uint16_t> any() {
    if (any_) return *any_;
    AEGAEON_TRY_ASSIGN(any, add(Node{}));
    any_ = any;
    Node object{.kind = Kind::kObject, .values = any};
    Node array{.kind = Kind::kArray, .items = any};
    Node literal{.kind = Kind::kLiteral, .literals = {"true", "false", "null"}};
    std::vector<std::uint16_t> alternatives;
    for (Node* node : {&object, &array, &literal}) {
      AEGAEON_TRY_ASSIGN(id, add(std::move(*node)));
      alternatives.push_back(id);
    }
    AEGAEON_TRY_ASSIGN(string, add(Node{.kind = Kind::kString}));
    AEGAEON_TRY_ASSIGN(number, add(Node{.kind = Kind::kNumber}));
    alternatives.push_back(string);
    alternatives.push_back(number);
    nodes[any].alternatives = std::move(alternatives);
    return any;
  }

  const json& root_;
  std::map<std::string, std::uint16_t> refs_;
  std::optional<std::uint16_t> any_;
};

}  // namespace

JsonGrammar::JsonGrammar(std::vector<Node> nodes, std::uint16_t key_node)
    : nodes_(std::move(nodes)), key_node_(key_node) {}
JsonGrammar::~JsonGrammar() = default;

core::Result<std::shared_ptr<const JsonGrammar>> JsonGrammar::compile(std::string_view schema_json, std::string_view path,
                                                                      std::string_view before, std::string_view after) {
  const json schema = json::parse(schema_json, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded()) return refuse(std::string(path), "the schema is not valid JSON");
  Compiler compiler(schema);
  AEGAEON_TRY_ASSIGN(root, compiler.compile(schema, std::string(path)));
  if (before.empty() && after.empty()) {
    compiler.nodes[0].alternatives = {root};
  } else {
    const auto literal = [&](std::string_view text) {
      compiler.nodes.push_back(Node{.kind = Kind::kLiteral, .literals = {std::string(text)}});
      return static_cast<std::uint16_t>(compiler.nodes.size() - 1);
    };
    std::vector<std::uint16_t> parts;
    if (!before.empty()) parts.push_back(literal(before));
    parts.push_back(root);
    if (!after.empty()) parts.push_back(literal(after));
    compiler.nodes[0].kind = Kind::kSequence;
    compiler.nodes[0].alternatives = std::move(parts);
  }
  // The keys of objects without declared properties: any string.
  compiler.nodes.push_back(Node{.kind = Kind::kString});
  const auto key_node = static_cast<std::uint16_t>(compiler.nodes.size() - 1);
  return std::shared_ptr<const JsonGrammar>(std::make_shared<JsonGrammar>(std::move(compiler.nodes), key_node));
}

bool JsonGrammar::Stack::operator==(const Stack& other) const {
  return depth == other.depth && std::memcmp(frames.data(), other.frames.data(), depth * sizeof(Frame)) == 0;
}

bool JsonGrammar::Stack::operator<(const Stack& other) const {
  if (depth != other.depth) return depth < other.depth;
  return std::memcmp(frames.data(), other.frames.data(), depth * sizeof(Frame)) < 0;
}

JsonGrammar::State JsonGrammar::start() const {
  Stack stack;
  stack.depth = 1;  // frames[0]: node 0, before the value
  return {stack};
}

void JsonGrammar::step(const State& state, std::uint8_t byte, State& next) const {
  next.clear();
  for (const Stack& stack : state) feed(stack, byte, next);
  if (next.size() > 1) {
    std::sort(next.begin(), next.end());
    next.erase(std::unique(next.begin(), next.end()), next.end());
    if (next.size() > kMaxStacks) next.resize(kMaxStacks);
  }
}

bool JsonGrammar::complete(const State& state) const {
  return std::any_of(state.begin(), state.end(), [&](const Stack& s) {
    if (s.depth == 0) return true;
    // A number ends where the text ends: at the root, one with all its digits is whole.
    if (s.depth != 1) return false;
    const Frame& f = s.top();
    const Kind kind = nodes_[f.node].kind;
    return (kind == Kind::kNumber || kind == Kind::kInteger) &&
           (f.phase == kZero || f.phase == kInteger || f.phase == kFraction || f.phase == kExponent);
  });
}

void JsonGrammar::append_key(const State& state, std::string& key) {
  for (const Stack& s : state) {
    key.push_back(static_cast<char>(s.depth));
    key.append(reinterpret_cast<const char*>(s.frames.data()), s.depth * sizeof(Frame));
  }
}

void JsonGrammar::finish_value(Stack& stack, const std::vector<Node>& nodes) {
  --stack.depth;
  if (stack.depth == 0) return;
  Frame& parent = stack.top();
  const Node& node = nodes[parent.node];
  parent.spaces = 0;
  if (node.kind == Kind::kSequence) {
    if (++parent.a == node.alternatives.size()) return finish_value(stack, nodes);
    stack.frames[stack.depth++] = Frame{.node = node.alternatives[parent.a]};  // a sequence is only at the root
    return;
  }
  if (node.kind == Kind::kObject) {
    if (parent.phase == kObjectKey) {  // a key of an object without declared properties
      parent.phase = kObjectColon;
    } else {
      parent.phase = kObjectNext;
      if (!node.properties.empty()) ++parent.a;
    }
  } else {  // kArray
    parent.phase = kArrayNext;
    if (node.counts() && parent.a < kMaxCount) ++parent.a;
  }
}

void JsonGrammar::feed(Stack s, std::uint8_t c, State& out) const {
  // Opens a value of `node` inside the top frame (false: too deep).
  const auto open = [&s](std::uint16_t node) {
    if (s.depth == kMaxDepth) return false;
    s.frames[s.depth++] = Frame{.node = node};
    return true;
  };
  for (;;) {
    if (s.depth == 0) return;  // the value is whole: nothing may follow
    Frame& f = s.top();
    const Node& n = nodes_[f.node];
    if (f.phase == kBefore) {
      if (is_space(c)) {
        if (f.spaces < kMaxSpaces) {
          Stack t = s;
          ++t.top().spaces;
          out.push_back(t);
        }
        // Only the text around the JSON (a literal of kSequence) may itself start with one.
        if (n.kind != Kind::kLiteral) return;
      }
      const Frame opened{.node = f.node, .phase = 1};
      switch (n.kind) {
        case Kind::kSequence:
          f.phase = 1;
          if (!open(n.alternatives[0])) return;
          continue;  // the first part reads this byte
        case Kind::kAnyOf:
          for (std::uint16_t alternative : n.alternatives) {
            Stack t = s;
            t.top() = Frame{.node = alternative};
            feed(t, c, out);
          }
          return;
        case Kind::kLiteral:
          for (std::size_t i = 0; i < n.literals.size(); ++i) {
            if (static_cast<std::uint8_t>(n.literals[i][0]) != c) continue;
            Stack t = s;
            t.top() = Frame{.node = f.node, .phase = kLiteralIn, .a = static_cast<std::uint16_t>(i), .b = 1};
            if (n.literals[i].size() == 1) finish_value(t, nodes_);
            out.push_back(t);
          }
          return;
        case Kind::kString:
        case Kind::kObject:
        case Kind::kArray: {
          const char opener = n.kind == Kind::kString ? '"' : n.kind == Kind::kObject ? '{' : '[';
          if (c != opener) return;
          f = opened;
          out.push_back(s);
          return;
        }
        case Kind::kNumber:
        case Kind::kInteger:
          if (c == '-') {
            f = Frame{.node = f.node, .phase = kMinus};
          } else if (c == '0') {
            f = Frame{.node = f.node, .phase = kZero};
          } else if (is_digit(c)) {
            f = Frame{.node = f.node, .phase = kInteger, .a = 1};
          } else {
            return;
          }
          out.push_back(s);
          return;
      }
      return;
    }
    if (is_space(c) && ((n.kind == Kind::kObject && f.phase != kObjectKey) || n.kind == Kind::kArray)) {
      if (f.spaces < kMaxSpaces) {
        ++f.spaces;
        out.push_back(s);
      }
      return;
    }
    switch (n.kind) {
      case Kind::kAnyOf:
      case Kind::kSequence:
        return;  // replaced by an alternative, or reading its part, from its first byte on
      case Kind::kLiteral: {
        const std::string& literal = n.literals[f.a];
        if (static_cast<std::uint8_t>(literal[f.b]) != c) return;
        if (++f.b == literal.size()) finish_value(s, nodes_);
        out.push_back(s);
        return;
      }
      case Kind::kString: {
        // A new code point, when the length allows one more.
        const auto code_point = [&] {
          if (!n.counts()) return true;
          if (f.a >= n.max) return false;
          ++f.a;
          return true;
        };
        bool ok = false;
        switch (f.b) {
          case kPlain:
            if (c == '"') {
              if (f.a < n.min) return;
              finish_value(s, nodes_);
              out.push_back(s);
              return;
            }
            if (c < 0x20) return;
            if (!code_point()) return;
            ok = true;
            if (c == '\\') f.b = kEscape;
            else if (c < 0x80) f.b = kPlain;
            else if (c >= 0xC2 && c <= 0xDF) f.b = kTail1;
            else if (c == 0xE0) f.b = kAfterE0;
            else if (c == 0xED) f.b = kAfterED;
            else if (c >= 0xE1 && c <= 0xEF) f.b = kTail2;
            else if (c == 0xF0) f.b = kAfterF0;
            else if (c >= 0xF1 && c <= 0xF3) f.b = kTail3;
            else if (c == 0xF4) f.b = kAfterF4;
            else ok = false;
            break;
          case kEscape:
            ok = c == 'u' || std::string_view("\"\\/bfnrt").find(static_cast<char>(c)) != std::string_view::npos;
            f.b = c == 'u' ? kHex4 : kPlain;
            break;
          case kHex4:
            ok = is_hex(c);
            f.b = c == 'd' || c == 'D' ? kHexD : kHex3;
            break;
          case kHex3:
          case kHex2:
          case kHex1:
            ok = is_hex(c);
            f.b = f.b == kHex1 ? std::uint16_t{kPlain} : static_cast<std::uint16_t>(f.b + 1);
            break;
          case kHexD:  // \uD8-\uDB: a high surrogate; \uDC-\uDF alone: refused
            ok = is_digit(c) || (c >= 'a' && c <= 'b') || (c >= 'A' && c <= 'B');
            f.b = c >= '0' && c <= '7' ? kHex2 : kHighHex2;
            break;
          case kHighHex2:
          case kHighHex1:
          case kPairBackslash:
          case kPairU:
          case kLowD:
          case kLowC: {
            const std::uint16_t state = f.b;
            ok = state == kHighHex2 || state == kHighHex1 ? is_hex(c)
                 : state == kPairBackslash               ? c == '\\'
                 : state == kPairU                       ? c == 'u'
                 : state == kLowD                        ? c == 'd' || c == 'D'
                                                         : (c >= 'c' && c <= 'f') || (c >= 'C' && c <= 'F');
            f.b = state == kLowC ? std::uint16_t{kHex2} : static_cast<std::uint16_t>(state + 1);
            break;
          }
          case kTail1:
          case kTail2:
          case kTail3:
            ok = c >= 0x80 && c <= 0xBF;
            f.b = f.b == kTail1 ? std::uint16_t{kPlain} : static_cast<std::uint16_t>(f.b - 1);
            break;
          case kAfterE0:
            ok = c >= 0xA0 && c <= 0xBF;
            f.b = kTail1;
            break;
          case kAfterED:
            ok = c >= 0x80 && c <= 0x9F;
            f.b = kTail1;
            break;
          case kAfterF0:
            ok = c >= 0x90 && c <= 0xBF;
            f.b = kTail2;
            break;
          case kAfterF4:
            ok = c >= 0x80 && c <= 0x8F;
            f.b = kTail2;
            break;
          default:
            break;
        }
        if (ok) out.push_back(s);
        return;
      }
      case Kind::kNumber:
      case Kind::kInteger: {
        const bool real = n.kind == Kind::kNumber;
        const auto to = [&](std::uint8_t phase, std::uint16_t digits) {
          f.phase = phase;
          f.a = digits;
          out.push_back(s);
        };
        switch (f.phase) {
          case kMinus:
            if (c == '0') return to(kZero, 0);
            if (is_digit(c)) return to(kInteger, 1);
            return;
          case kZero:
          case kInteger:
            if (f.phase == kInteger && is_digit(c) && f.a < kMaxIntegerDigits) return to(kInteger, f.a + 1);
            if (real && c == '.') return to(kDot, 0);
            if (real && (c == 'e' || c == 'E')) return to(kExponentMark, 0);
            break;
          case kDot:
            if (is_digit(c)) return to(kFraction, 1);
            return;
          case kFraction:
            if (is_digit(c) && f.a < kMaxFractionDigits) return to(kFraction, f.a + 1);
            if (c == 'e' || c == 'E') return to(kExponentMark, 0);
            break;
          case kExponentMark:
            if (c == '+' || c == '-') return to(kExponentSign, 0);
            if (is_digit(c)) return to(kExponent, 1);
            return;
          case kExponentSign:
            if (is_digit(c)) return to(kExponent, 1);
            return;
          case kExponent:
            // Two digits: with 16 before the point a number stays far inside a double (a
            // three-digit exponent overflows strict parsers; found by fuzzing).
            if (is_digit(c) && f.a < 2) return to(kExponent, f.a + 1);
            break;
          default:
            return;
        }
        // A whole number ends before a byte it cannot take; its container reads that byte.
        finish_value(s, nodes_);
        continue;
      }
      case Kind::kObject:
        switch (f.phase) {
          case kObjectOpen:
          case kObjectComma:
            if (c == '}' && f.phase == kObjectOpen && n.may_close(f.a)) {
              finish_value(s, nodes_);
              out.push_back(s);
              return;
            }
            if (c != '"') return;
            if (n.properties.empty()) {  // any key
              if (n.values < 0) return;
              f.phase = kObjectKey;
              f.spaces = 0;
              if (!open(key_node_)) return;
              s.top().phase = kStringIn;
              out.push_back(s);
              return;
            }
            // One reading per property that may come next: any up to the next required one.
            for (std::size_t j = f.a; j < n.properties.size(); ++j) {
              Stack t = s;
              t.top() = Frame{.node = f.node, .phase = kObjectKey, .a = static_cast<std::uint16_t>(j), .b = 1};
              out.push_back(t);
              if (n.properties[j].required) break;
            }
            return;
          case kObjectKey: {
            const std::string& key = n.properties[f.a].key;
            if (static_cast<std::uint8_t>(key[f.b]) != c) return;
            if (++f.b == key.size()) {
              f.phase = kObjectColon;
              f.b = 0;
            }
            out.push_back(s);
            return;
          }
          case kObjectColon:
            if (c != ':') return;
            f.phase = kObjectValue;
            f.spaces = 0;
            if (!open(n.properties.empty() ? static_cast<std::uint16_t>(n.values) : n.properties[f.a].value)) return;
            out.push_back(s);
            return;
          case kObjectNext:
            if (c == ',' && (n.properties.empty() || f.a < n.properties.size())) {
              f.phase = kObjectComma;
              f.spaces = 0;
              out.push_back(s);
            } else if (c == '}' && n.may_close(f.a)) {
              finish_value(s, nodes_);
              out.push_back(s);
            }
            return;
          default:
            return;
        }
      case Kind::kArray:
        switch (f.phase) {
          case kArrayOpen:
            if (c == ']') {
              if (n.min > 0) return;
              finish_value(s, nodes_);
              out.push_back(s);
              return;
            }
            if (n.max == 0) return;
            f.phase = kArrayItem;
            f.spaces = 0;
            if (!open(static_cast<std::uint16_t>(n.items))) return;
            continue;  // the item reads this byte
          case kArrayNext:
            if (c == ',' && f.a < n.max) {
              f.phase = kArrayItem;
              f.spaces = 0;
              if (!open(static_cast<std::uint16_t>(n.items))) return;
              out.push_back(s);
            } else if (c == ']' && f.a >= n.min) {
              finish_value(s, nodes_);
              out.push_back(s);
            }
            return;
          default:
            return;
        }
    }
    return;
  }
}

}  // namespace aegaeon::text
