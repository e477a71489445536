# Driven by tests/service/test_client_r.py: Rscript check_client.R REPO OUT_DIR
# Runs the R client against the stack named by FITEXPLAIN_URL / FITEXPLAIN_TOKEN and prints one JSON report.
args <- commandArgs(trailingOnly = TRUE)
repo <- args[1]
out <- args[2]
source(file.path(repo, "clients", "r", "fitexplain.R"))
data <- file.path(repo, "tests", "data")
cases <- list(
  list("mlclassification", "breast_cancer_dataset2.csv", list(interpretability = "permutation")),
  list("gbdtclassification", "breast_cancer_dataset2.csv", list(interpretability = "shap")),
  list("mlregression", "boston_dataset2.csv", list(interpretability = "permutation", return_pi = TRUE)),
  list("gbdtregression", "boston_dataset2.csv", list(interpretability = c("shap", "permutation")))
)
report <- list()
for (case in cases) {
  endpoint <- case[[1]]
  job <- do.call(fx_submit, c(list(file.path(data, case[[2]]), endpoint), case[[3]]))
  finished <- fx_wait(job, timeout = 300, progress = FALSE)
  res <- fx_result(finished)
  png_path <- file.path(out, paste0(endpoint, ".png"))
  fx_plot_importance(res, file = png_path)
  one <- res$interpretability
  report[[endpoint]] <- list(
    status = finished$status,
    n_pred = length(res$y_pred),
    # techtonique's R idiom: res$interpretability$feature_names (one method asked)
    feature_names = if (!is.null(one$feature_names)) one$feature_names else one[[1]]$feature_names,
    methods = if (!is.null(one$method)) one$method else vapply(one, function(x) x$method, ""),
    has_pi = !is.null(res$pi_lower),
    png = png_path
  )
}
kept <- fx_submit(file.path(data, "breast_cancer_dataset2.csv"), "gbdtclassification", model_type = "xgboost")
kept <- fx_wait(kept, timeout = 300, progress = FALSE)
card <- fx_model(kept)
model_file <- fx_download_model(kept, path = out, format = "native")
report$model <- list(
  estimator = card$estimator$name, formats = card$formats, sha256 = card$sha256,
  file = model_file, size = file.size(model_file)
)
rows <- read.csv(file.path(data, "boston_dataset2.csv"), check.names = FALSE)[1:30, ]
explained <- fx_submit(
  file.path(data, "boston_dataset2.csv"), "mlregression", interpretability = "shap", background = rows
)
explained <- fx_result(fx_wait(explained, timeout = 300, progress = FALSE))
sampled <- fx_predict(kept, file.path(data, "breast_cancer_dataset2.csv"), background = "sample:5")
sampled <- fx_result(fx_wait(sampled, timeout = 300, progress = FALSE))
report$background <- list(
  upload = explained$interpretability$background, unused = sampled$interpretability$background
)
bad <- tryCatch(
  fx_submit(file.path(data, "malformed", "non_numeric.csv"), "mlclassification"),
  fitexplain_error = function(e) e
)
report$bad_column <- list(
  class = class(bad)[1], status = bad$status, code = bad$code, column = bad$column,
  message = conditionMessage(bad)
)
cat(toJSON(report, auto_unbox = TRUE))
