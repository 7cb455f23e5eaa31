/* The JNI binding of the client library (org.fedrec.Client): each native method converts its
 * arguments, makes the one C call of include/fedrec/client.h and converts the result; an error
 * becomes an org.fedrec.FedrecException carrying the status and message. No logic of its own. */
#include <jni.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/client.h"

#define CLS(name) "org/fedrec/" name

static void throw_error(JNIEnv *env, int status, int failure, int retry_ms, const char *msg) {
  if ((*env)->ExceptionCheck(env)) return; /* one already pending (out of memory in the JVM) */
  jclass c = (*env)->FindClass(env, CLS("FedrecException"));
  if (!c) return;
  jmethodID init = (*env)->GetMethodID(env, c, "<init>", "(IIILjava/lang/String;)V");
  jstring m = (*env)->NewStringUTF(env, msg);
  if (init && m) {
    jobject e = (*env)->NewObject(env, c, init, (jint)status, (jint)failure, (jint)retry_ms, m);
    if (e) (*env)->Throw(env, (jthrowable)e);
  }
}

static fedrec_client *H(jlong h) { return (fedrec_client *)(intptr_t)h; }

/* A Java string as a malloc'ed C string (NULL for null; *bad set when it could not be had). */
static char *cstr(JNIEnv *env, jstring s, int *bad) {
  if (!s) return NULL;
  const char *u = (*env)->GetStringUTFChars(env, s, NULL);
  char *c = u ? strdup(u) : NULL;
  if (u) (*env)->ReleaseStringUTFChars(env, s, u);
  if (!c) {
    *bad = 1;
    throw_error(env, FEDREC_ERR_NOMEM, 0, 0, "fedrec: a string argument could not be converted");
  }
  return c;
}

static char *field_str(JNIEnv *env, jobject o, jclass c, const char *name, int *bad) {
  jfieldID f = (*env)->GetFieldID(env, c, name, "Ljava/lang/String;");
  if (!f) return *bad = 1, NULL;
  jstring s = (jstring)(*env)->GetObjectField(env, o, f);
  char *r = cstr(env, s, bad);
  if (s) (*env)->DeleteLocalRef(env, s);
  return r;
}

static jint field_int(JNIEnv *env, jobject o, jclass c, const char *name, const char *sig, int *bad) {
  jfieldID f = (*env)->GetFieldID(env, c, name, sig);
  if (!f) return *bad = 1, 0;
  return sig[0] == 'Z' ? (*env)->GetBooleanField(env, o, f) : (*env)->GetIntField(env, o, f);
}

enum { NSTR = 11 };
static const char *const STR_FIELDS[NSTR] = {"store", "target", "caFile", "certFile", "keyFile", "token", "coordinatorKey",
                                             "catalogue", "weights", "authorityKey", "region"};

JNIEXPORT jlong JNICALL Java_org_fedrec_Client_nativeOpen(JNIEnv *env, jclass cls, jobject cfg) {
  (void)cls;
  if (!cfg) {
    throw_error(env, FEDREC_ERR_ARG, 0, 0, "fedrec: open: the config is null");
    return 0;
  }
  jclass c = (*env)->GetObjectClass(env, cfg);
  int bad = 0;
  char *s[NSTR];
  for (int i = 0; i < NSTR; i++) s[i] = bad ? NULL : field_str(env, cfg, c, STR_FIELDS[i], &bad);
  fedrec_client_config k = {.store = s[0], .target = s[1], .ca_file = s[2], .cert_file = s[3], .key_file = s[4], .token = s[5],
                            .coordinator_key = s[6], .catalogue = s[7], .weights = s[8], .authority_key = s[9], .region = s[10]};
  k.insecure = field_int(env, cfg, c, "insecure", "Z", &bad);
  k.must_exist = field_int(env, cfg, c, "mustExist", "Z", &bad);
  k.max_catalogue_mb = (uint32_t)field_int(env, cfg, c, "maxCatalogueMb", "I", &bad);
  k.max_participation = (uint32_t)field_int(env, cfg, c, "maxParticipation", "I", &bad);
  k.min_separation = (uint32_t)field_int(env, cfg, c, "minSeparation", "I", &bad);
  k.call_timeout_ms = (uint32_t)field_int(env, cfg, c, "callTimeoutMs", "I", &bad);
  k.sync_timeout_ms = (uint32_t)field_int(env, cfg, c, "syncTimeoutMs", "I", &bad);
  fedrec_client *h = NULL;
  fedrec_error err = {0};
  if (!bad && fedrec_client_open(&h, &k, &err)) throw_error(env, err.status, 0, 0, err.msg);
  if (s[5]) memset(s[5], 0, strlen(s[5])); /* the token: kept in the store (0600) only */
  for (int i = 0; i < NSTR; i++) free(s[i]);
  return (jlong)(intptr_t)h;
}

JNIEXPORT void JNICALL Java_org_fedrec_Client_nativeClose(JNIEnv *env, jclass cls, jlong h) {
  (void)env, (void)cls;
  fedrec_client_close(H(h));
}

JNIEXPORT void JNICALL Java_org_fedrec_Client_nativeRecord(JNIEnv *env, jclass cls, jlong h, jstring item, jfloat w) {
  (void)cls;
  int bad = 0;
  char *it = cstr(env, item, &bad);
  fedrec_error err = {0};
  if (!bad && fedrec_client_record(H(h), it ? it : "", w, &err)) throw_error(env, err.status, 0, 0, err.msg);
  free(it);
}

JNIEXPORT jlongArray JNICALL Java_org_fedrec_Client_nativeHistorySize(JNIEnv *env, jclass cls, jlong h) {
  (void)cls;
  int64_t n[2];
  fedrec_error err = {0};
  if (fedrec_client_history_size(H(h), &n[0], &n[1], &err)) {
    throw_error(env, err.status, 0, 0, err.msg);
    return NULL;
  }
  jlongArray a = (*env)->NewLongArray(env, 2);
  jlong v[2] = {(jlong)n[0], (jlong)n[1]};
  if (a) (*env)->SetLongArrayRegion(env, a, 0, 2, v);
  return a;
}

JNIEXPORT jobject JNICALL Java_org_fedrec_Client_nativeSync(JNIEnv *env, jclass cls, jlong h) {
  (void)cls;
  fedrec_sync_outcome o;
  fedrec_error err = {0};
  if (fedrec_client_sync(H(h), &o, &err)) {
    throw_error(env, err.status, (int)o.failure, (int)o.retry_after_ms, err.msg);
    return NULL;
  }
  jclass c = (*env)->FindClass(env, CLS("SyncOutcome"));
  jmethodID init = c ? (*env)->GetMethodID(env, c, "<init>", "(IJJIJLjava/lang/String;)V") : NULL;
  jstring d = init ? (*env)->NewStringUTF(env, o.detail) : NULL;
  if (!d) return NULL;
  return (*env)->NewObject(env, c, init, (jint)o.result, (jlong)o.round, (jlong)o.model_version, (jint)o.retry_after_ms,
                           (jlong)o.resumed_at, d);
}

JNIEXPORT jobjectArray JNICALL Java_org_fedrec_Client_nativeRecommend(JNIEnv *env, jclass cls, jlong h, jint k) {
  (void)cls;
  if (k < 1 || k > 100000) {
    throw_error(env, FEDREC_ERR_ARG, 0, 0, "fedrec: recommend: k must be in [1, 100000]");
    return NULL;
  }
  char(*items)[64] = malloc((size_t)k * sizeof *items);
  float *scores = malloc((size_t)k * sizeof *scores);
  int32_t n = 0;
  fedrec_error err = {0};
  jobjectArray out = NULL;
  if (!items || !scores) throw_error(env, FEDREC_ERR_NOMEM, 0, 0, "fedrec: recommend");
  else if (fedrec_client_recommend(H(h), k, items, scores, &n, &err)) throw_error(env, err.status, 0, 0, err.msg);
  else {
    jclass c = (*env)->FindClass(env, CLS("Recommendation"));
    jmethodID init = c ? (*env)->GetMethodID(env, c, "<init>", "(Ljava/lang/String;F)V") : NULL;
    out = init ? (*env)->NewObjectArray(env, n, c, NULL) : NULL;
    for (int32_t r = 0; out && r < n; r++) {
      jstring s = (*env)->NewStringUTF(env, items[r]);
      jobject e = s ? (*env)->NewObject(env, c, init, s, (jfloat)scores[r]) : NULL;
      if (!e) return free(items), free(scores), NULL;
      (*env)->SetObjectArrayElement(env, out, r, e);
      (*env)->DeleteLocalRef(env, e), (*env)->DeleteLocalRef(env, s);
    }
  }
  free(items), free(scores);
  return out;
}

/* names[0..n) and values as a String[] and a float[] in *a, *b; 0 on a JVM failure. */
static int pairs(JNIEnv *env, int32_t n, const char (*names)[64], size_t stride, const float *values, jobjectArray *a,
                 jfloatArray *b) {
  jclass sc = (*env)->FindClass(env, "java/lang/String");
  *a = sc ? (*env)->NewObjectArray(env, n, sc, NULL) : NULL;
  *b = (*env)->NewFloatArray(env, n);
  if (!*a || !*b) return 0;
  for (int32_t r = 0; r < n; r++) {
    const char *name = (const char *)names + r * stride;
    jfloat v;
    memcpy(&v, (const char *)values + r * stride, sizeof v);
    jstring s = (*env)->NewStringUTF(env, name);
    if (!s) return 0;
    (*env)->SetObjectArrayElement(env, *a, r, s);
    (*env)->SetFloatArrayRegion(env, *b, r, 1, &v);
    (*env)->DeleteLocalRef(env, s);
  }
  return 1;
}

JNIEXPORT jobject JNICALL Java_org_fedrec_Client_nativeExplain(JNIEnv *env, jclass cls, jlong h, jstring item) {
  (void)cls;
  int bad = 0;
  char *it = cstr(env, item, &bad);
  fedrec_explanation x;
  fedrec_error err = {0};
  if (bad) return NULL;
  fedrec_status st = fedrec_client_explain(H(h), it ? it : "", &x, &err);
  free(it);
  if (st) {
    throw_error(env, err.status, 0, 0, err.msg);
    return NULL;
  }
  jobjectArray by, similar;
  jfloatArray byc, simc;
  size_t stride = sizeof x.by[0];
  if (!pairs(env, x.n, &x.by[0].item, stride, &x.by[0].contribution, &by, &byc) ||
      !pairs(env, x.n_similar, &x.similar[0].item, stride, &x.similar[0].contribution, &similar, &simc))
    return NULL;
  jclass c = (*env)->FindClass(env, CLS("Explanation"));
  jmethodID init = c ? (*env)->GetMethodID(env, c, "<init>", "(Ljava/lang/String;FI[Ljava/lang/String;[FF[Ljava/lang/String;[F)V") : NULL;
  jstring name = init ? (*env)->NewStringUTF(env, x.item) : NULL;
  if (!name) return NULL;
  return (*env)->NewObject(env, c, init, name, (jfloat)x.score, (jint)x.history, by, byc, (jfloat)x.rest, similar, simc);
}

JNIEXPORT void JNICALL Java_org_fedrec_Client_nativeSetRegion(JNIEnv *env, jclass cls, jlong h, jstring groups) {
  (void)cls;
  int bad = 0;
  char *g = cstr(env, groups, &bad);
  fedrec_error err = {0};
  if (!bad && fedrec_client_set_region(H(h), g ? g : "", &err)) throw_error(env, err.status, 0, 0, err.msg);
  free(g);
}

JNIEXPORT jstring JNICALL Java_org_fedrec_Client_nativeTitle(JNIEnv *env, jclass cls, jlong h, jstring item) {
  (void)cls;
  int bad = 0;
  char *it = cstr(env, item, &bad), title[256];
  int missing = bad || !it || fedrec_client_title(H(h), it, title, sizeof title);
  free(it);
  return missing ? NULL : (*env)->NewStringUTF(env, title);
}

JNIEXPORT jlong JNICALL Java_org_fedrec_Client_nativeModelVersion(JNIEnv *env, jclass cls, jlong h) {
  (void)env, (void)cls;
  return (jlong)fedrec_client_model_version(H(h));
}
