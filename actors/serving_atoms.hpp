// CAF atoms and message-type permissions of the serving roles. Included by the actor .cpp
// files and by gpu_worker.hpp, whose typed protocol names them.
#pragma once

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include "actors/policy/model_pins.hpp"
#include "actors/proxy.hpp"
#include "actors/serving_messages.hpp"
#include "rpc/http/http_types.hpp"

namespace aegaeon::actors {

using admit_atom = caf::atom_constant<caf::atom("admit")>;        // proxy → prefill
using token_atom = caf::atom_constant<caf::atom("token")>;        // prefill/decode → proxy
using handoff_atom = caf::atom_constant<caf::atom("handoff")>;    // prefill → decode
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;      // proxy → prefill/decode
using drive_atom = caf::atom_constant<caf::atom("drive")>;        // self: look for work
using wire_atom = caf::atom_constant<caf::atom("wire")>;          // set-up: peers' handles
using alpha_atom = caf::atom_constant<caf::atom("alpha")>;        // decode → prefill (admission)
using submit_atom = caf::atom_constant<caf::atom("submit")>;      // HTTP → proxy
using switch_atom = caf::atom_constant<caf::atom("switch")>;      // → gpu_worker
using prefetch_atom = caf::atom_constant<caf::atom("prefetch")>;  // → gpu_worker
using prefill_atom = caf::atom_constant<caf::atom("prefill")>;    // → gpu_worker
using decode_atom = caf::atom_constant<caf::atom("decode")>;      // → gpu_worker
using import_atom = caf::atom_constant<caf::atom("import")>;      // → gpu_worker
using swapout_atom = caf::atom_constant<caf::atom("swapout")>;    // → gpu_worker
using release_atom = caf::atom_constant<caf::atom("release")>;    // → gpu_worker
using admin_atom = caf::atom_constant<caf::atom("admin")>;        // admin API → proxy
using pin_atom = caf::atom_constant<caf::atom("pin")>;            // admin API → prefill/decode
using unload_atom = caf::atom_constant<caf::atom("unload")>;      // admin API → prefill/decode
using forget_atom = caf::atom_constant<caf::atom("forget")>;      // → gpu_worker
using catalog_atom = caf::atom_constant<caf::atom("catalog")>;    // set-up: node → outside front

}  // namespace aegaeon::actors

// These types travel between actors of one process only; they are never serialized.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::actors::PrefillJob)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::actors::AdmissionReply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::actors::TokenEvent)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<aegaeon::actors::TokenEvent>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::actors::Handoff)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::actors::SwitchBatchCommand)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::actors::DecodeCommand)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::actors::PrefillOutcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::actors::DecodeOutcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::actors::ImportCommand)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::worker::SwitchStats)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::worker::PrefillItem)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::core::GenerationRequest)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::rpc::http::Responder)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::actors::FrontAction)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::actors::FrontReport)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::policy::ModelPins)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(aegaeon::actors::DevicesForgot)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<const aegaeon::actors::ModelCatalog>)
