#include "bundled.h"

#include <string.h>

extern const char llm_text_tiny[];

const char *llm_bundled_text(const char *name) {
  if (strcmp(name, "tiny") == 0)
    return llm_text_tiny;
  return NULL;
}

const char *llm_bundled_names(void) { return "tiny"; }
