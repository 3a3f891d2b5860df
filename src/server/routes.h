// Each resource's routes, registered by Server in this order.
#pragma once
#include "model/network.h"
#include "server/api.h"
#include "server/context.h"

namespace myelin::server {

class Scheduler;
class SystemMonitor;

void add_auth_routes(Router& r, Context& c);
void add_job_routes(Router& r, Context& c, Scheduler& s, const SystemMonitor& sys);
void add_model_routes(Router& r, Context& c);
void add_network_routes(Router& r, Context& c);
void add_event_routes(Router& r, Context& c);

// A network as the API shows it: layers with output shapes, parameters, FLOPs and inputs.
nlohmann::json network_json(const NetworkSpec& net);

}  // namespace myelin::server
