# The optional components: parts of pgolf a configuration may leave unused
# (test-time training, GPTQ, LQER, CUDA graphs, the fused ops' CUDA kernels,
# checkpoints), and the minifier, which no configuration uses: a tree unpacked
# from the counted code is minified already.
# The counted code of a configuration (the code archive in train_gpt.py)
# leaves out the sources of the components it does not use
# (config/components.h says which configuration uses which). CMakeLists.txt
# defines PGOLF_HAS_<NAME> to 1 when all of a component's sources are in the
# tree, else 0; the code reaches a component only under
# `if constexpr (kHas<Name>)`. Included by CMakeLists.txt and by
# cmake/embed_sources.cmake; the headers stay in every tree.
set(PGOLF_COMPONENTS TTT GPTQ LQER CUDA_GRAPHS CUDA_KERNELS CHECKPOINTS MINIFIER)
set(PGOLF_COMPONENT_TTT src/eval/ttt.cpp src/eval/lora.cpp)
set(PGOLF_COMPONENT_GPTQ src/export/gptq.cpp src/export/calibrate.cpp)
set(PGOLF_COMPONENT_LQER src/export/lqer.cpp)
set(PGOLF_COMPONENT_CUDA_GRAPHS src/train/cuda_graph.cpp)
# The fused ops' CUDA kernels; their ATen references and CPU loops stay.
set(PGOLF_COMPONENT_CUDA_KERNELS src/kernels/cuda_kernels.cuh src/kernels/device_check.cu src/kernels/qk_norm_rope.cu src/kernels/relu2.cu
  src/kernels/residual_norm.cu src/kernels/smear_norm.cu src/kernels/softcap_ce.cu src/kernels/xsa.cu)
set(PGOLF_COMPONENT_CHECKPOINTS src/train/checkpoint.cpp)
set(PGOLF_COMPONENT_MINIFIER src/export/minify.cpp)
