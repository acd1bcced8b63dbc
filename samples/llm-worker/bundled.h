/* Model texts built into the llm-worker binary (from models/). */
#ifndef LLM_BUNDLED_H
#define LLM_BUNDLED_H

/* The text of bundled model @p name, or NULL when there is none. */
const char *llm_bundled_text(const char *name);
/* "tiny" (the names, comma separated), for error messages. */
const char *llm_bundled_names(void);

#endif
