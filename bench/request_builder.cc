#include "bench/request_builder.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <memory>

namespace micro::bench {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Keeps the parser's first complaint for the caller instead of letting it log to stderr.
class FirstErrorCollector final : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (first_.empty()) {
      first_ = "line " + std::to_string(line + 1) + " column " + std::to_string(column + 1) + ": " +
               message;
    }
  }
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};

bool ParseTextRequest(const std::string& type, const std::string& text, std::string* bytes,
                      std::string* error) {
  const google::protobuf::Descriptor* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(type);
  if (descriptor == nullptr) {
    *error = "unknown --request-type '" + type +
             "': give a full name such as micro.registry.v1.GetServiceRequest";
    return false;
  }
  google::protobuf::DynamicMessageFactory factory;
  std::unique_ptr<google::protobuf::Message> message(factory.GetPrototype(descriptor)->New());
  // "{n}" becomes the fixed-width marker, which serializes unchanged and is numbered per call.
  std::string expanded = text;
  for (size_t at = 0; (at = expanded.find("{n}", at)) != std::string::npos;
       at += kCallNumberMarker.size()) {
    expanded.replace(at, 3, kCallNumberMarker);
  }
  FirstErrorCollector errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(expanded, message.get())) {
    *error = "bad --request-text for " + type + ": " + errors.first();
    return false;
  }
  if (!message->SerializeToString(bytes)) {
    *error = "could not serialize the " + type + " request";
    return false;
  }
  return true;
}

}  // namespace

bool DecodeHex(std::string_view hex, std::string* bytes) {
  if (hex.size() % 2 != 0) return false;
  bytes->clear();
  bytes->reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int high = HexDigit(hex[i]);
    const int low = HexDigit(hex[i + 1]);
    if (high < 0 || low < 0) return false;
    bytes->push_back(static_cast<char>(high * 16 + low));
  }
  return true;
}

std::string EncodeHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    hex.push_back(kDigits[byte >> 4]);
    hex.push_back(kDigits[byte & 0xf]);
  }
  return hex;
}

std::vector<size_t> FindCallNumberFields(std::string_view request) {
  std::vector<size_t> fields;
  for (size_t at = 0; (at = request.find(kCallNumberMarker, at)) != std::string_view::npos;
       at += kCallNumberMarker.size()) {
    fields.push_back(at);
  }
  return fields;
}

void SetCallNumber(uint64_t number, const std::vector<size_t>& fields, std::string* request) {
  char digits[kCallNumberMarker.size()];
  for (size_t i = sizeof(digits); i > 0; --i, number /= 10) {
    digits[i - 1] = static_cast<char>('0' + number % 10);
  }
  for (const size_t at : fields) std::copy(digits, digits + sizeof(digits), request->begin() + at);
}

bool BuildRequest(const LoadgenFlags& flags, std::string* bytes, std::string* error) {
  if (flags.has_request_hex) {
    if (DecodeHex(flags.request_hex, bytes)) return true;
    *error = "bad --request-hex: needs an even number of hex digits";
    return false;
  }
  return ParseTextRequest(flags.request_type, flags.request_text, bytes, error);
}

}  // namespace micro::bench
