// SPDX-License-Identifier: Apache-2.0
#pragma once

// The umbrella header: what an embedder needs.
#include <troupe/conf/cluster_config.hpp>
#include <troupe/conf/load.hpp>
#include <troupe/engine/channel.hpp>
#include <troupe/engine/send_options.hpp>
#include <troupe/engine/send_result.hpp>
#include <troupe/managers/error.hpp>
#include <troupe/managers/manager.hpp>
#include <troupe/transport/error.hpp>
#include <troupe/version.hpp>
