#include "services/registry/registry_proto.h"

namespace micro::registry {
namespace {

Metadata FromProto(const google::protobuf::Map<std::string, std::string>& in) {
  return Metadata(in.begin(), in.end());
}

void ToProto(const Metadata& in, google::protobuf::Map<std::string, std::string>* out) {
  for (const auto& [key, value] : in) (*out)[key] = value;
}

v1::Action ToProto(Action action) {
  switch (action) {
    case Action::kCreate:
      return v1::ACTION_CREATE;
    case Action::kUpdate:
      return v1::ACTION_UPDATE;
    case Action::kDelete:
      return v1::ACTION_DELETE;
  }
  return v1::ACTION_UNSPECIFIED;
}

}  // namespace

Service FromProto(const v1::Service& in) {
  Service out{in.name(), in.version(), FromProto(in.metadata()), {}, {}};
  out.endpoints.reserve(in.endpoints_size());
  for (const auto& e : in.endpoints()) out.endpoints.push_back({e.name(), FromProto(e.metadata())});
  out.nodes.reserve(in.nodes_size());
  for (const auto& n : in.nodes())
    out.nodes.push_back({n.id(), n.address(), FromProto(n.metadata())});
  return out;
}

void ToProto(const Service& in, v1::Service* out) {
  out->set_name(in.name);
  out->set_version(in.version);
  ToProto(in.metadata, out->mutable_metadata());
  for (const Endpoint& e : in.endpoints) {
    v1::Endpoint* pe = out->add_endpoints();
    pe->set_name(e.name);
    ToProto(e.metadata, pe->mutable_metadata());
  }
  for (const Node& n : in.nodes) {
    v1::Node* pn = out->add_nodes();
    pn->set_id(n.id);
    pn->set_address(n.address);
    ToProto(n.metadata, pn->mutable_metadata());
  }
}

void ToProto(const Event& in, v1::WatchEvent* out) {
  out->set_action(ToProto(in.action));
  ToProto(in.service, out->mutable_service());
  out->set_timestamp_unix_ms(in.timestamp_unix_ms);
}

}  // namespace micro::registry
