"""Explanations of a fitted model: permutation importance and SHAP values.

`methods/` holds the explanation methods as objects (what the pipeline and the worker call, by name);
the modules here compute the numbers. `shap.explain_shap` dispatches: exact TreeSHAP for tree models, a
structure-aware explainer for nnetsauce models over trees, exact enumeration for few features,
antithetic sampling otherwise.
"""
