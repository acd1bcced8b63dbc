/* The one export macro: the library is built with -fvisibility=hidden and
 * only what carries RBEE_EXTERN is visible to programs that link it. */
#ifndef RBEE_EXPORT_H
#define RBEE_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define RBEE_EXTERN __attribute__((visibility("default")))
#define RBEE_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define RBEE_EXTERN
#define RBEE_PRINTF(fmt, args)
#endif

#ifdef __cplusplus
#define RBEE_BEGIN_DECLS extern "C" {
#define RBEE_END_DECLS }
#else
#define RBEE_BEGIN_DECLS
#define RBEE_END_DECLS
#endif

#endif
