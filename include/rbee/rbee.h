/* librbee: the framework for rbee inference workers. One include for all. */
#ifndef RBEE_RBEE_H
#define RBEE_RBEE_H

#include "export.h"
#include "version.h"
#include "errors.h"
#include "log.h"
#include "timestamp.h"
#include "info.h"
#include "device.h"
#include "heartbeat.h"
#include "job.h"
#include "params.h"
#include "binary.h"
#include "engine.h"
#include "worker.h"
#include "metrics.h"
#include "trace.h"
#include "summary.h"

#endif
